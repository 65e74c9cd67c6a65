"""``neuroevo bench`` (and ``neuroevo bench ray | warp``) run end to end through their flags; their figures
are never asserted on."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math

import pytest
import torch

from neuroevo import bench
from neuroevo.bench import evotorch_gymne, mujoco_envpool, mujoco_eval, mujoco_limit, throughput
from neuroevo.bench.common import Column, Table, field
from neuroevo.envs import make_env
from neuroevo.policies import make_policy
from neuroevo.rollout import evaluate


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_bench_returns_and_writes_figures(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench" / "figures.json"
    # One torch thread: on a busy 2-core machine, intra-op threads wait on each other for milliseconds.
    flags = ["--quick", "--envs", "8", "--gym-envs", "4", "--popsizes", "8,32", "--threads", "1", "--modes", "eager"]
    args = parser.parse_args([*flags, "--json", str(out)])
    figures = bench.main(args)

    assert set(figures) == {"meta", "evaluation", "bandwidth", "forward", "notes"}
    devices = figures["meta"]["devices"]
    assert "cpu" in devices
    # Part 1: gymnasium once per policy, plus each device's torch backend per policy.
    assert len(figures["evaluation"]) == 2 * (1 + len(devices))
    for row in figures["evaluation"]:
        assert {row["backend"], row["policy"]} <= {"gymnasium", "torch", "linear", "mlp"}
        for key in ("env_steps", "seconds", "env_steps_per_s", "mean_episode_length", "vs_gymnasium"):
            assert _positive_finite(row[key]), (key, row)
    # Part 2: one bandwidth bound per device, one forward row per device and population size.
    assert set(figures["bandwidth"]) == set(devices)
    for bw in figures["bandwidth"].values():
        assert all(_positive_finite(bw[k]) for k in ("sum_gb_per_s", "copy_gb_per_s", "bound_gb_per_s"))
    assert sorted(r["popsize"] for r in figures["forward"]) == sorted([8, 32] * len(devices))
    for row in figures["forward"]:
        for key in ("seconds_per_call", "members_per_s", "param_gb_per_s", "percent_of_bound"):
            assert _positive_finite(row[key]), (key, row)

    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    report = capsys.readouterr().out
    assert "gymnasium" in report and "% bound" in report


def test_unknown_mode_is_refused():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(ValueError, match="--modes takes a comma-separated subset of eager, compiled"):
        bench.main(parser.parse_args(["--quick", "--modes", "jit"]))


def _parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(flags))


def test_quick_mujoco_bench_returns_and_writes_figures(tmp_path, capsys):
    pytest.importorskip("mujoco")
    out = tmp_path / "mujoco.json"
    # Tiny: 2 members, 8-step episodes, one physics thread; no EvoTorch (Ray takes seconds to start).
    flags = ["--env", "Hopper-v5", "--quick", "--popsize", "2", "--max-steps", "8", "--physics-threads", "1"]
    figures = bench.main(_parse(*flags, "--threads", "1", "--no-evotorch", "--json", str(out)))

    assert set(figures) == {"meta", "mujoco", "notes"}  # CartPole's parts run only when asked for
    (task,) = figures["mujoco"]
    assert task["env_id"] == "Hopper-v5" and task["frame_skip"] == 4 and task["max_steps"] == 8
    assert _positive_finite(task["concurrency"]["ratio"])  # a measurement: load beside it can put it past 2
    assert [lim["policy"] for lim in task["limits"]] == ["linear", "mlp"]
    for lim in task["limits"]:
        for key in ("one_core_env_steps_per_s", "all_cores_env_steps_per_s"):
            assert _positive_finite(lim[key]), (key, lim)
        assert lim["all_cores_env_steps_per_s"] == pytest.approx(lim["one_core_env_steps_per_s"] * lim["cores"])
    backends = ["gymnasium", "mujoco"] + (["envpool"] if importlib.util.find_spec("envpool") else [])
    assert sorted((r["backend"], r["policy"]) for r in task["rows"]) == sorted(
        (b, p) for b in backends for p in ("linear", "mlp")
    )
    for row in task["rows"]:
        assert row["popsize"] == 2 and 1 <= row["mean_episode_length"] <= 8
        for key in ("env_steps", "seconds", "env_steps_per_s", "percent_of_one_core", "percent_of_all_cores"):
            assert _positive_finite(row[key]), (key, row)
        # the mujoco rows split their wall time into the physics call and the serial rest
        assert (row.get("physics_phase_percent") is None) == (row["backend"] != "mujoco"), row
        assert row["backend"] != "mujoco" or 0 < row["physics_phase_percent"] < 100, row
    same_episodes = [r for r in task["rows"] if r["backend"] in ("mujoco", "gymnasium")]
    assert len({(r["policy"], r["env_steps"]) for r in same_episodes}) == 2  # the same seeded episodes

    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    report = capsys.readouterr().out
    assert "Hopper-v5" in report and "env steps/s on 1 core" in report and "evotorch" not in report


def _linear_population(env_id: str, popsize: int):
    """The bench's linear policy for ``env_id`` and a random population of it (seed 0)."""
    probe = make_env(env_id, 1, device="cpu", backend="mujoco", num_threads=1)
    policy = mujoco_eval.task_policy("linear", probe)
    probe.close()
    return policy, mujoco_eval.random_population(policy, popsize, seed=0)


def test_physics_clock_times_every_step_and_reset():
    pytest.importorskip("mujoco")
    policy, params = _linear_population("Ant-v5", 3)
    clock = mujoco_limit.PhysicsClock("Ant-v5", 3)
    try:
        result = evaluate(policy, params, clock, seed=1, max_steps=6)
    finally:
        clock.close()
    # every env step of the evaluation (running episodes only) and each episode's reset, timed once
    assert clock.env_steps == result.env_steps == 18 and clock.resets == 3 and clock.seconds > 0


def test_envpool_evaluation_steps_only_running_episodes():
    pytest.importorskip("envpool")
    policy, params = _linear_population("Hopper-v5", 4)
    params[1] *= 40  # a member that falls early
    pool = mujoco_envpool.make_pool("Hopper-v5", torch.tensor([7, 8, 9, 10]), threads=1, max_steps=60)
    sent = []

    class Recorder:  # EnvPool's pool, with the env ids of every send recorded
        def __getattr__(self, name):
            return getattr(pool, name)

        def send(self, actions, env_id):
            sent.append(env_id.tolist())
            pool.send(actions, env_id)

    try:
        returns, lengths = mujoco_envpool.evaluate_envpool(policy, params, Recorder())
    finally:
        pool.close()
    assert len(sent) == lengths.max() <= 60 and lengths.min() < lengths.max() and torch.isfinite(returns).all()
    for member, length in enumerate(lengths.tolist()):  # stepped while running, never after
        assert [member in ids for ids in sent] == [t < length for t in range(len(sent))]


def test_env_selects_the_parts():
    cartpole = throughput._settings(_parse("--env", "CartPole-v1", "--quick"))
    assert cartpole["cartpole"] and cartpole["mujoco_envs"] == [] and cartpole["devices"] == ["cpu", "cuda"]
    both = throughput._settings(_parse("--env", "Hopper-v5, CartPole-v1,Hopper-v5"))
    assert both["cartpole"] and both["mujoco_envs"] == ["Hopper-v5"]
    mujoco = throughput._settings(_parse("--env", "Ant-v5,Humanoid-v5", "--quick"))
    assert not mujoco["cartpole"] and mujoco["mujoco_envs"] == ["Ant-v5", "Humanoid-v5"]
    assert mujoco["devices"] == ["cpu"] and mujoco["popsize"] == mujoco_eval.QUICK["popsizes"]
    assert mujoco["physics_threads"] == mujoco["cores"] >= 1


@pytest.mark.parametrize("env_id", ["Hopper-v4", "Pendulum-v1"])
def test_unknown_env_is_refused(env_id):
    with pytest.raises(ValueError, match=f"--env: unknown '{env_id}'; choose CartPole-v1 or MuJoCo tasks: .*Hopper-v5"):
        bench.main(_parse("--env", env_id, "--quick"))


def test_module_layout_is_the_policy_modules_parameter_order():
    for policy in (make_policy("linear", 5, 3), make_policy("mlp", 5, 3, hidden=[4, 6])):
        params = mujoco_eval.random_population(policy, 3, seed=0)
        values = evotorch_gymne.module_layout(policy, params)
        obs = torch.randn(3, 1, 5)
        for member, (flat, vector) in enumerate(zip(params, values, strict=True)):
            module = policy.to_module(flat)
            torch.nn.utils.vector_to_parameters(vector, module.parameters())  # a round trip through the vector
            torch.testing.assert_close(module(obs[member]), policy(params, obs)[member])


def test_evotorch_row_when_installed():
    pytest.importorskip("evotorch")
    pytest.importorskip("mujoco")
    probe = make_env("Hopper-v5", 1, device="cpu", backend="mujoco", num_threads=1)
    policy = mujoco_eval.task_policy("mlp", probe)
    probe.close()
    params = mujoco_eval.random_population(policy, 2, seed=0)
    # One actor: GymNE evaluates in this process, without starting Ray.
    row = evotorch_gymne.bench_evotorch("Hopper-v5", policy, params, actors=1, max_steps=5, repeats=1)
    assert row["backend"] == "evotorch" and row["workers"] == 1 and row["popsize"] == 2
    assert 1 <= row["mean_episode_length"] <= 5 and 2 <= row["env_steps"] <= 10
    assert _positive_finite(row["env_steps_per_s"]) and _positive_finite(row["seconds"])


def test_missing_evotorch_is_a_note(monkeypatch):
    monkeypatch.setattr(evotorch_gymne.importlib.util, "find_spec", lambda name, package=None: None)
    notes = []
    assert not evotorch_gymne.usable({"evotorch": True}, notes)
    assert notes == ["evotorch: row skipped, not installed (pip install evotorch)"]
    assert not evotorch_gymne.usable({"evotorch": False}, notes) and len(notes) == 1  # --no-evotorch: no note


def test_subcommands_leave_the_default_invocations_alone():
    assert _parse("--env", "Hopper-v5", "--quick").benchmark is None
    assert _parse("--json", "out.json").json == "out.json"
    ray = _parse("ray", "--workers", "1,2", "--json", "rows.json")
    assert ray.benchmark == "ray" and ray.workers == "1,2" and ray.json == "rows.json"
    warp = _parse("warp", "--quick", "--popsize", "4,8")
    assert warp.benchmark == "warp" and warp.quick and warp.popsize == (4, 8)


def test_report_of_cuda_rows():
    """The CUDA lines (targets, goals) on made-up figures: no GPU needed to check their layout."""
    meta = {"torch_version": "x", "device_names": {"cuda": "H100"}, "load_average": None, "repeats": 3, "wall_s": 1.0}
    evaluation = {"backend": "torch", "mode": "eager", "device": "cuda", "policy": "linear", "num_envs": 1 << 20,
                  "mean_episode_length": 480.0, "env_steps_per_s": 5e8, "gymnasium_env_steps_per_s": None,
                  "vs_gymnasium": None}
    forward = {"device": "cuda", "popsize": 1024, "obs_per_member": 1, "num_params": 4610, "seconds_per_call": 1e-4,
               "members_per_s": 1e7, "param_gb_per_s": 189.0, "bound_gb_per_s": 3000.0, "percent_of_bound": 6.3}
    figures = {"meta": meta, "evaluation": [evaluation], "bandwidth": {}, "forward": [forward], "notes": []}
    lines = throughput.format_report(figures).splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("device"))
    assert lines[header + 1].endswith("6%   (H100 goal >= 70%)")
    assert lines[header + 1].index("6%") + 2 == len(lines[header])  # the % column still lines up
    target = "  target (H100, linear, 1,048,576 envs): >= 1e+09 env steps/s; measured 5e+08 at 1,048,576 envs on cuda"
    assert any(line.startswith(target) for line in lines)


def test_table_columns_line_up():
    table = Table([Column("name", 6, field("name"), left=True), Column("rate", 8, field("rate", ",.0f"))], "  ")
    assert table.lines([{"name": "a", "rate": 12345.6}, {"name": "bc"}]) == [
        "  name       rate",
        "  a        12,346",
        "  bc",  # a missing figure is a blank cell
    ]


def test_quick_ray_bench(tmp_path, capsys):
    """One worker, a few short episodes, on a local Ray instance of 2 CPUs that the bench starts and stops."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("mujoco")
    if ray.is_initialized():
        pytest.skip("Ray is running in this process already")
    out, rows_json = tmp_path / "ray.txt", tmp_path / "ray.json"
    flags = ["--envs", "Hopper-v5", "--workers", "1,64", "--popsize", "8", "--generations", "1"]
    rows, lines = bench.main(_parse("ray", *flags, "--out", str(out), "--json", str(rows_json)))

    assert not ray.is_initialized()
    assert [(r["env"], r["workers"]) for r in rows] == [("Hopper-v5", 0), ("Hopper-v5", 1)]
    for key in ("env_steps_per_s", "env_steps_per_cpu_s"):
        assert all(_positive_finite(r[key]) for r in rows), key
    assert rows[1]["efficiency"] == 1.0
    assert any(line.startswith("not measured: 64 workers") for line in lines)
    assert out.read_text() == "\n".join(lines) + "\n" and json.loads(rows_json.read_text()) == rows
    assert "in-process, " in capsys.readouterr().out


def test_quick_warp_bench(tmp_path, capsys):
    pytest.importorskip("mujoco_warp")
    out = tmp_path / "warp.json"
    flags = ["--quick", "--device", "cpu", "--popsize", "4", "--mujoco-popsize", "4", "--policies", "linear"]
    figures = bench.main(_parse("warp", *flags, "--max-steps", "4", "--physics-seconds", "0.01", "--json", str(out)))

    assert [(r["backend"], r["popsize"]) for r in figures["rows"]] == [
        ("mujoco_warp physics", 4), ("warp", 4), ("mujoco", 4)
    ]
    assert _positive_finite(figures["rows"][1]["percent_of_physics_limit"])
    assert all(_positive_finite(r["env_steps_per_s"]) for r in figures["rows"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    assert "of the raw physics rate" in capsys.readouterr().out


def test_unknown_warp_env_is_refused():
    with pytest.raises(ValueError, match="--env: unknown Pendulum-v1; the warp backend has .*Hopper-v5"):
        bench.main(_parse("warp", "--env", "Pendulum-v1"))


def test_quick_lowrank_bench_prints_the_three_paths_side_by_side(tmp_path, capsys, monkeypatch):
    from neuroevo.bench import lowrank

    real = lowrank._in_subprocess
    launched = []

    def in_process_but_one(job):  # one real subprocess (a memory probe); the rest here, to keep the test short
        if not launched and not job["timed"]:
            launched.append(job)
            return real(job)
        return lowrank.measure(job)

    monkeypatch.setattr(lowrank, "_in_subprocess", in_process_but_one)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["lowrank", "--quick", "--conv", "--threads", "1", "--out", str(tmp_path / "r.txt")])
    result = bench.main(args)
    rows = {row["path"]: row for row in result["rows"]}
    assert set(rows) == {"inference", "low-rank", "full-rank"} and launched
    for row in rows.values():
        assert _positive_finite(row["samples_per_s"]) and _positive_finite(row["peak_rss_mib"]), row
    assert {"grouped", "im2col", "loop", "shared", "low_rank"} <= set(result["conv"][0])
    report = (tmp_path / "r.txt").read_text()
    assert "(a) inference (b) low-rank (c) full-rank" in report and report in capsys.readouterr().out


def test_quick_atari_bench_prints_the_three_stacks_side_by_side(tmp_path, capsys):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    out = tmp_path / "atari.json"
    report = bench.main(_parse("atari", "--quick", "--policy", "small", "--steps", "8", "--json", str(out)))
    assert [r["stack"] for r in report["rows"]] == ["neuroevo", "ale-py loop", "gymnasium"]
    assert all(_positive_finite(r["frames_per_s"]) for r in report["rows"]) and report["rows"][0]["ours_over_it"] == 1
    assert json.loads(out.read_text())["rows"] == report["rows"]
    assert "ale-py loop" in capsys.readouterr().out

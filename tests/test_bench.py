"""``neuroevo bench`` runs end to end through its flags; its figures are never asserted on."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from neuroevo import bench


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
    assert [lim["policy"] for lim in task["limits"]] == ["linear", "mlp"]
    for lim in task["limits"]:
        for key in ("physics_steps_per_s", "one_core_env_steps_per_s", "all_cores_env_steps_per_s"):
            assert _positive_finite(lim[key]), (key, lim)
        assert lim["all_cores_env_steps_per_s"] == pytest.approx(lim["one_core_env_steps_per_s"] * lim["cores"])
    assert sorted((r["backend"], r["policy"]) for r in task["rows"]) == [
        ("gymnasium", "linear"), ("gymnasium", "mlp"), ("mujoco", "linear"), ("mujoco", "mlp")
    ]
    for row in task["rows"]:
        assert row["popsize"] == 2 and 1 <= row["mean_episode_length"] <= 8
        for key in ("env_steps", "seconds", "env_steps_per_s", "percent_of_one_core", "percent_of_all_cores"):
            assert _positive_finite(row[key]), (key, row)

    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    report = capsys.readouterr().out
    assert "Hopper-v5" in report and "physics steps/s on 1 core" in report and "evotorch" not in report


def test_env_selects_the_parts():
    cartpole = bench._settings(_parse("--env", "CartPole-v1", "--quick"))
    assert cartpole["cartpole"] and cartpole["mujoco_envs"] == [] and cartpole["devices"] == ["cpu", "cuda"]
    both = bench._settings(_parse("--env", "Hopper-v5, CartPole-v1,Hopper-v5"))
    assert both["cartpole"] and both["mujoco_envs"] == ["Hopper-v5"]
    mujoco = bench._settings(_parse("--env", "Ant-v5,Humanoid-v5", "--quick"))
    assert not mujoco["cartpole"] and mujoco["mujoco_envs"] == ["Ant-v5", "Humanoid-v5"]
    assert mujoco["devices"] == ["cpu"] and mujoco["popsize"] == bench.MUJOCO_QUICK["popsize"]
    assert mujoco["physics_threads"] == mujoco["cores"] >= 1


@pytest.mark.parametrize("env_id", ["Hopper-v4", "Pendulum-v1"])
def test_unknown_env_is_refused(env_id):
    with pytest.raises(ValueError, match=f"--env: unknown '{env_id}'; choose CartPole-v1 or MuJoCo tasks: .*Hopper-v5"):
        bench.main(_parse("--env", env_id, "--quick"))


def test_module_layout_is_the_policy_modules_parameter_order():
    for policy in (bench.make_policy("linear", 5, 3), bench.make_policy("mlp", 5, 3, hidden=[4, 6])):
        params = bench.random_population(policy, 3, seed=0)
        values = bench.module_layout(policy, params)
        obs = torch.randn(3, 1, 5)
        for member, (flat, vector) in enumerate(zip(params, values, strict=True)):
            module = policy.to_module(flat)
            torch.nn.utils.vector_to_parameters(vector, module.parameters())  # a round trip through the vector
            torch.testing.assert_close(module(obs[member]), policy(params, obs)[member])


def test_evotorch_row_when_installed():
    pytest.importorskip("evotorch")
    pytest.importorskip("mujoco")
    probe = bench.make_env("Hopper-v5", 1, device="cpu", backend="mujoco", num_threads=1)
    policy = bench.task_policy("mlp", probe)
    probe.close()
    params = bench.random_population(policy, 2, seed=0)
    # One actor: GymNE evaluates in this process, without starting Ray.
    row = bench.bench_evotorch("Hopper-v5", policy, params, actors=1, max_steps=5, repeats=1)
    assert row["backend"] == "evotorch" and row["workers"] == 1 and row["popsize"] == 2
    assert 1 <= row["mean_episode_length"] <= 5 and 2 <= row["env_steps"] <= 10
    assert _positive_finite(row["env_steps_per_s"]) and _positive_finite(row["seconds"])


def test_missing_evotorch_is_a_note(monkeypatch):
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name, package=None: None)
    notes = []
    assert not bench._evotorch_usable({"evotorch": True}, notes)
    assert notes == ["evotorch: row skipped, not installed (pip install evotorch)"]
    assert not bench._evotorch_usable({"evotorch": False}, notes) and len(notes) == 1  # --no-evotorch: no note

"""The GPU check (``scripts/gpu_check.py``, ``neuroevo bench gpu``) runs on the CPU with ``--quick``, writes every
part's JSON, and a rerun keeps what was measured; the runner's time shares, on a fake clock; the CUDA-graphed
rollout's buffer handling, emulated on the CPU. Figures are never asserted on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neuroevo.bench import gpu_check, gpu_learning
from neuroevo.bench.budget import Ladder, PartContext
from neuroevo.bench.gpu_check import PARTS, Part, parse_parts, run_check
from neuroevo.bench.graphed import GraphedRollout
from neuroevo.cli import main as cli_main
from neuroevo.envs import make_env
from neuroevo.policies import make_policy, output_dim
from neuroevo.rollout import evaluate

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEYS = {"part", "number", "title", "meta", "share_s", "given_s", "status", "seconds", "figures", "notes"}
META_KEYS = {"date", "device", "device_name", "cpu", "cores", "versions", "command", "budget_s", "quick"}
#: what each part's figures hold after a --quick run on the CPU (ray is in the test extra)
FIGURES = {
    "correctness": {"compared", "tell", "torch_envs", "warp", "checks", "passed"},
    "cartpole": {"evaluation"},
    "forward": {"bandwidth", "forward"},
    "warp": {"max_steps", "rows"},
    "learning": {"tasks"},
    "cpu": {"cores", "mujoco", "ray"},
    "lowrank": {"rows"},
    "conv": {"rows"},
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, str]:
    """The command the docs give, --quick on the CPU, every part: (its folder, its output)."""
    pytest.importorskip("mujoco_warp")
    pytest.importorskip("ray")
    out = tmp_path_factory.mktemp("gpu") / "check"
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--quick", "--device", "cpu", "--budget", "600",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def test_quick_check_writes_every_part(quick_run):
    out, log = quick_run
    for part in PARTS:
        data = json.loads((out / f"{part.name}.json").read_text())
        assert RECORD_KEYS <= set(data) and META_KEYS <= set(data["meta"])
        assert data["status"] == "ok", data.get("error")
        assert data["meta"]["quick"] and data["meta"]["device"] == "cpu"
        assert FIGURES[part.name] <= set(data["figures"]), (part.name, sorted(data["figures"]))
        assert not [n for n in data["notes"] if "failed" in n], data["notes"]
    correctness = json.loads((out / "correctness.json").read_text())
    assert "no CUDA device: compared cpu with cpu" in correctness["notes"]
    assert correctness["figures"]["checks"] == correctness["figures"]["passed"] > 0  # the CPU agrees with itself
    cartpole = json.loads((out / "cartpole.json").read_text())
    assert any("CUDA-graphed rows are skipped" in n for n in cartpole["notes"])
    (task,) = json.loads((out / "learning.json").read_text())["figures"]["tasks"]
    assert {"reached", "seconds_to_target", "generations", "env_steps", "curve", "score"} <= set(task)
    assert {"warp_mean", "gymnasium_mean", "gap_percent", "within_goal"} <= set(task["score"])
    assert (out / "learning" / "Hopper-v5" / "best_policy.pt").is_file()

    summary = json.loads((out / "summary.json").read_text())
    assert {name: s["status"] for name, s in summary["parts"].items()} == {p.name: "ok" for p in PARTS}
    assert {r["part"] for r in summary["rows"]} == {p.name for p in PARTS}
    text = (out / "summary.txt").read_text()
    assert text in log and "neuroevo GPU check" in text and "target" in text


def test_a_rerun_skips_finished_parts_and_retries_a_failed_one(quick_run, capsys):
    out, _ = quick_run
    before = {p.name: (out / f"{p.name}.json").read_text() for p in PARTS}
    forward = json.loads(before["forward"])
    (out / "forward.json").write_text(json.dumps({**forward, "status": "failed", "reason": "as if it had failed"}))

    assert cli_main(["bench", "gpu", "--quick", "--device", "cpu", "--parts", "3,cartpole", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"Part 2 cartpole: finished before ({out / 'cartpole.json'}), skipped" in log
    assert "Part 3 forward: ok in" in log
    retried = json.loads((out / "forward.json").read_text())
    assert retried["status"] == "ok" and retried["meta"]["date"] >= forward["meta"]["date"]
    for name in ("correctness", "cartpole", "warp", "learning", "cpu"):  # untouched
        assert (out / f"{name}.json").read_text() == before[name]
    summary = json.loads((out / "summary.json").read_text())  # every part in the folder, not only those run
    assert {name: s["status"] for name, s in summary["parts"].items()} == {p.name: "ok" for p in PARTS}


# -- the runner, on a fake clock ---------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    return clock


def _part(number: int, name: str, weight: float, run, min_s: float = 1.0) -> Part:
    return Part(number, name, f"part {name}", weight, min_s, run, lambda figures: [
        {"figure": f"{name} figure", "value": str(figures.get("value")), "target": "", "met": None}])


def test_a_part_whose_share_is_spent_is_skipped_with_a_note(tmp_path, clock):
    given = {}

    def slow(ctx: PartContext) -> dict:
        given["a"] = ctx.left()
        clock.now += 90  # of a budget of 100, where b and c have 25 s each
        return {"value": 1}

    def fast(ctx: PartContext) -> dict:
        given["c"] = ctx.left()
        return {"value": 3}

    parts = [_part(1, "a", 2, slow), _part(2, "b", 1, fast), _part(3, "c", 1, fast)]
    summary = run_check(parts, tmp_path, 100.0, torch.device("cpu"), quick=True)
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["status"] == "skipped" and b["reason"].startswith("skipped for time: 0 s left for it")
    assert b["notes"] == [b["reason"]]
    assert given == {"a": pytest.approx(50.0), "c": pytest.approx(10.0)}  # c: the budget left; a: its share
    assert [s["status"] for s in summary["parts"].values()] == ["ok", "skipped", "ok"]
    assert [r["figure"] for r in summary["rows"]] == ["a figure", "skipped", "c figure"]


def test_time_a_part_leaves_goes_to_the_next(tmp_path, clock):
    given = []

    def part(ctx: PartContext) -> dict:
        given.append(ctx.left())
        clock.now += 10
        return {}

    run_check([_part(1, "a", 1, part), _part(2, "b", 1, part), _part(3, "c", 2, part)], tmp_path, 100.0,
              torch.device("cpu"))
    assert given == [pytest.approx(25.0), pytest.approx(40.0), pytest.approx(80.0)]


def test_a_failed_or_killed_part_runs_again_and_a_finished_one_does_not(tmp_path, clock, capsys):
    calls = []

    def flaky(ctx: PartContext) -> dict:
        calls.append("b")
        ctx.record("rows", {"x": 1})  # measured before it fails: kept in the failed part's JSON
        if calls.count("b") == 1:
            raise RuntimeError("out of luck")
        return ctx.figures

    def steady(ctx: PartContext) -> dict:
        calls.append("a")
        return {"value": 1}

    parts = [_part(1, "a", 1, steady), _part(2, "b", 1, flaky)]
    run_check(parts, tmp_path, 100.0, torch.device("cpu"))
    failed = json.loads((tmp_path / "b.json").read_text())
    assert failed["status"] == "failed" and failed["reason"] == "RuntimeError: out of luck"
    assert "Traceback" in failed["error"] and failed["figures"] == {"rows": [{"x": 1}]}
    summary = run_check(parts, tmp_path, 100.0, torch.device("cpu"))
    assert calls == ["a", "b", "b"]
    assert summary["parts"]["b"]["status"] == "ok" and "Part 1 a: finished before" in capsys.readouterr().out

    # a part killed mid-run left its partial figures as "running": shown as partial, and run again
    (tmp_path / "a.json").write_text(json.dumps({**failed, "status": "running", "figures": {"value": 7}}))
    rows, statuses = gpu_check.summary_rows(tmp_path, parts)
    assert statuses["a"]["status"] == "running" and rows[0]["figure"].startswith("a figure (partial")
    run_check(parts, tmp_path, 100.0, torch.device("cpu"))
    assert calls == ["a", "b", "b", "a"]


def test_ladder_takes_sizes_while_their_estimate_fits(clock):
    ctx = PartContext(torch.device("cpu"), quick=False, deadline=clock.now + 100)
    ladder, measured = Ladder(ctx, "thing"), []
    for size in ladder.over([1, 2, 4, 8, 16]):
        measured.append(size)
        clock.now += 5 * size  # 5, 10, 20, 40 s (each estimated right); then 16 would need ~80 s, 25 are left
    assert measured == [1, 2, 4, 8]
    assert ctx.notes == ["thing: skipped 16 for time (~80 s estimated for 16, 25 s left of the part's share)"]
    assert ctx.attempt("broken", lambda: 1 / 0) is None and ctx.notes[-1].startswith("broken: failed, Zero")


def test_parts_by_number_or_name():
    assert [p.name for p in parse_parts("warp,1")] == ["correctness", "warp"]
    assert [p.number for p in parse_parts(None)] == [1, 2, 3, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="--parts: unknown 9, atari; the parts are 1 correctness, 2 cartpole"):
        parse_parts("9,atari,cpu")


# -- the CUDA-graphed rollout, emulated on the CPU ---------------------------------------------------------------
@pytest.mark.parametrize(("env_id", "kind"), [("CartPole-v1", "linear"), ("Pendulum-v1", "mlp")])
def test_graphed_rollout_buffers_give_evaluates_episodes(env_id, kind):
    env, reference = make_env(env_id, 16, device="cpu"), make_env(env_id, 16, device="cpu")
    hidden = {"hidden": [8]} if kind == "mlp" else {}
    policy = make_policy(kind, env.obs_dim, output_dim(env.single_action_space), **hidden)
    params = 0.3 * torch.randn(16, policy.num_params, generator=torch.Generator().manual_seed(0))
    graphed = GraphedRollout(policy, params, env, block=8, emulate=True)
    for seed, members in ((3, params), (40, params.flip(0))):  # new seeds and new members into the same buffers
        got, expected = graphed.run(seed, members), evaluate(policy, members, reference, seed=seed)
        assert torch.equal(got.episode_returns, expected.episode_returns)
        assert torch.equal(got.episode_lengths, expected.episode_lengths) and got.env_steps == expected.env_steps


def test_graphed_rollout_refuses_what_it_cannot_capture():
    policy = make_policy("linear", 4, 2)
    params = torch.zeros(4, policy.num_params)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        GraphedRollout(policy, params, make_env("CartPole-v1", 4, device="cpu"))
    with pytest.raises(ValueError, match="one episode per member: the env needs P = 4 envs, has 8"):
        GraphedRollout(policy, params, make_env("CartPole-v1", 8, device="cpu"), emulate=True)
    with pytest.raises(ValueError, match="steps torch-native envs, not GymVectorEnv"):
        GraphedRollout(policy, params, make_env("CartPole-v1", 4, device="cpu", backend="gymnasium"), emulate=True)


def test_the_learning_tasks_are_valid_configs():
    for task in (*gpu_learning.TASKS, *gpu_learning.QUICK_TASKS):
        config = gpu_learning._config(task, torch.device("cuda"))
        config.validate()
        assert (config.env.backend, config.run.algo, config.run.target) == ("warp", "ars", task.target)

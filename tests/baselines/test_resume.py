"""A killed baseline run of ``neuroevo compare`` continues from its last save, not from zero."""

import json

from neuroevo.baselines.sb3 import last_checkpoint
from neuroevo.cli import main
from neuroevo.faults import neuroevo_command, spawn, wait_until


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_a_killed_td3_run_continues_from_its_last_save(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "Pendulum-v1", "--algos", "td3", "--steps", "1200", "--seeds", "1", "--out", str(out),
            "--set", "td3.save_every=400", "--set", "td3.learning_starts=100", "--set", "td3.train_freq=4",
            "--set", "td3.eval_points=6", "--set", "run.eval_episodes=1", "--set", "env.max_steps=40"]
    run_dir = out / "td3" / "seed0"
    with spawn(neuroevo_command(*args), log=tmp_path / "child.log") as child:
        wait_until(lambda: last_checkpoint(run_dir) is not None, 120, child=child, what="the first save")
        child.kill()
    assert not (run_dir / "result.json").exists()
    saved = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    assert (run_dir / "checkpoints" / saved["dir"] / "replay_buffer.pkl").exists()
    before = _rows(run_dir)
    kept = [row for row in before if row["env_steps"] <= saved["env_steps"]]
    assert kept and kept[-1]["env_steps"] == saved["env_steps"]

    assert main(args) == 0
    after = _rows(run_dir)
    # the rows up to the save are the killed run's own, wall times included: a run from zero would rewrite them
    assert after[: len(kept)] == kept
    steps = [row["env_steps"] for row in after]
    assert steps == sorted(set(steps)) and steps[-1] == 1200 and len(after) == 6  # rows after the save redone once
    assert after[-1]["time/wall"] > kept[-1]["time/wall"]  # the clock continues
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2  # the first invocation and the resume
    assert json.loads((run_dir / "result.json").read_text())["env_steps"] == 1200
    assert not (run_dir / "checkpoints").exists()


def test_ppo_with_vecnormalize_resumes_from_its_save_in_process(tmp_path, monkeypatch):
    from neuroevo import resolve_config
    from neuroevo.baselines import sb3

    original = sb3.save_checkpoint

    def save_then_die(*args):
        original(*args)
        raise KeyboardInterrupt("killed after the first save")

    config = resolve_config("CartPole-v1", {"run": {"steps": 1024, "seed": 0, "eval_episodes": 2},
                                            "ppo": {"normalize": True, "save_every": 512, "eval_points": 4}})
    monkeypatch.setattr(sb3, "save_checkpoint", save_then_die)
    try:
        sb3.train_baseline("ppo", config, tmp_path / "run")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(sb3, "save_checkpoint", original)
    step_dir = last_checkpoint(tmp_path / "run")
    assert step_dir is not None and (step_dir / "vecnormalize.pkl").exists()
    before = _rows(tmp_path / "run")
    result = sb3.resume_baseline(tmp_path / "run")
    assert result.resumed_from == 512 and result.env_steps == 1024
    after = _rows(tmp_path / "run")
    assert after[: len(before)] == before and [r["env_steps"] for r in after] == [256, 512, 768, 1024]
    assert result.history == after  # the callback's rows before the save came back from the save
    assert (tmp_path / "run" / "vecnormalize.pkl").exists() and not (tmp_path / "run" / "checkpoints").exists()

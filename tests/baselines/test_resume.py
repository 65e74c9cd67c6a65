"""A killed baseline run of ``neuroevo compare`` continues from its last save, not from zero."""

import json

from neuroevo.baselines.sb3 import last_checkpoint
from neuroevo.cli import main
from neuroevo.faults import neuroevo_command, spawn, wait_until


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_a_killed_td3_run_continues_from_its_last_save(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "Pendulum-v1", "--algos", "td3", "--steps", "1600", "--seeds", "1", "--out", str(out),
            "--set", "td3.save_every=400", "--set", "td3.learning_starts=100", "--set", "td3.train_freq=4",
            "--set", "td3.eval_points=8", "--set", "run.eval_episodes=1", "--set", "env.max_steps=40"]
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
    assert steps == sorted(set(steps)) and steps[-1] == 1600 and len(after) == 8  # rows after the save redone once
    assert after[-1]["time/wall"] > kept[-1]["time/wall"]  # the clock continues
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2  # the first invocation and the resume
    assert json.loads((run_dir / "result.json").read_text())["env_steps"] == 1600
    assert not (run_dir / "checkpoints").exists()

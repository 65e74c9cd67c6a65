"""The fault-injection harness (neuroevo.faults) that the chaos suite and the cluster tests share, on the promise
it exists for: a run killed at any moment, even between writing its checkpoint and renaming it into place,
resumes into exactly the run it would have been."""

from __future__ import annotations

import signal

import torch

from neuroevo import faults
from neuroevo.faults import Child, PauseGate, differences, neuroevo_command, run_record, spawn, wait_until

TRAIN = ("train", "--env", "CartPole-v1", "--algo", "es", "--generations", "6", "--set", "es.popsize=8",
         "--set", "run.eval_every=2", "--set", "run.checkpoint_every=1")


def _train(out, log, *extra, env=None) -> Child:
    return spawn(neuroevo_command(*TRAIN, "--out", str(out), *extra), log=log, env=env)


def test_differences_finds_each_kind_of_change():
    a = {"x": torch.tensor([1.0, float("nan")]), "n": 3, "rows": [{"time/wall": 1.0, "v": 2.0}]}
    same = {"x": torch.tensor([1.0, float("nan")]), "n": 3, "rows": [{"time/wall": 9.0, "v": 2.0}]}
    assert differences(a, same) == []  # NaN equals NaN; wall times are skipped
    assert differences(a, {**a, "x": torch.tensor([1.0, 2.0])}) == [
        "/x: tensors differ (torch.float32[2] vs torch.float32[2])"
    ]
    assert differences(a, {**a, "x": a["x"].double()})  # same values, other dtype
    assert differences(a, {**a, "n": 4}) == ["/n: 3 vs 4"]
    assert differences(a, {**a, "rows": []}) == ["/rows: 1 items vs 0"]
    assert differences(a, {"x": a["x"], "n": 3}) == ["/rows: only in the first"]


def test_a_kill_between_write_and_rename_loses_nothing(tmp_path):
    """SIGKILL the trainer while its third checkpoint sits written but not renamed: the previous checkpoint is
    intact, and --resume ends bit for bit where an uninterrupted run ends (every metric but wall times)."""
    straight = tmp_path / "straight"
    with _train(straight, tmp_path / "straight.log") as child:
        assert child.wait(120) == 0, child.output()

    gate = PauseGate(tmp_path / "pauses", match="last.pt")
    killed = tmp_path / "killed"
    with _train(killed, tmp_path / "killed.log", env=gate.env()) as child:
        for _ in range(2):  # let the first two checkpoints through
            gate.release(gate.wait(60, child))
        marker = gate.wait(60, child)
        assert any((killed / "checkpoints").glob(".last.pt.*.tmp")), "the new checkpoint should be written, unrenamed"
        child.kill()
    assert faults.run_record(killed)["checkpoint"]["generation"] == 2  # the previous checkpoint survived
    assert marker.read_text().endswith("last.pt")

    with spawn(neuroevo_command("train", "--resume", str(killed)), log=tmp_path / "resume.log") as child:
        assert child.wait(120) == 0, child.output()
    assert differences(run_record(straight), run_record(killed)) == []


def test_sigterm_to_the_group_stops_after_a_checkpointed_generation(tmp_path):
    """SIGTERM (what SLURM sends before preemption) ends the run cleanly with a checkpoint to resume from."""
    run = tmp_path / "run"
    with _train(run, tmp_path / "run.log", "--set", "run.generations=100000") as child:
        wait_until(lambda: faults.generations_logged(run) >= 2, 120, child=child, what="two generations")
        child.signal(signal.SIGTERM)
        assert child.wait(60) == 130, child.output()  # the CLI's status for a run stopped by a signal
    record = run_record(run)
    assert record["checkpoint"]["generation"] == len(record["metrics"]) >= 2
    assert "--resume" in child.output()

"""The chaos suite (neuroevo.chaos, scripts/chaos.py --quick) survives every attack it makes, and one regression
test per defect it found (each failed before its fix). The Ray attack's quick run is in
tests/distributed/test_ray_trainer.py, beside the Ray instance those tests share."""

from __future__ import annotations

import errno
import os
import random
import stat

import pytest
import torch

import neuroevo
from neuroevo import chaos
from neuroevo.checkpoint import atomic_write, load_file, load_policy
from neuroevo.cli import main
from neuroevo.config import resolve_config
from neuroevo.faults import differences, run_record
from neuroevo.trainer import HISTORY_WINDOW, Trainer


def test_quick_chaos_survives_every_attack(tmp_path):
    settings = chaos.Settings(tmp_path / "work", quick=True, rng=random.Random(0))
    names = [name for name in chaos.ATTACKS if name not in chaos.RAY_ATTACKS]
    outcomes = chaos.run(names, settings, tmp_path / "out", )
    assert {o.attack.split(":")[0].split(",")[0] for o in outcomes} >= {"soak", "full disk during a run (tmpfs)"}
    for outcome in outcomes:
        assert outcome.tried > 0 and outcome.failures == [] and outcome.survived == outcome.tried, outcome
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.count("\n") == 2 + len(outcomes) and all((tmp_path / "out" / f"{n}.json").exists() for n in names)


def _config(**run):
    return resolve_config("CartPole-v1", {
        "run": {"algo": "es", "seed": 3, "device": "cpu", "generations": 4, "target": None, "eval_episodes": 2,
                **run},
        "policy": {"kind": "linear"}, "es": {"popsize": 8}, "env": {"max_steps": 50}})


def _cli(capsys, *args):
    status = main(list(args))
    return status, capsys.readouterr().err


# -- config --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ({"es": {"sigma": "abc"}}, "es.sigma must be a number, got 'abc'"),  # was a TypeError traceback
    ({"es": {"sigma": float("nan")}}, "es.sigma must be a finite number"),  # was a run with NaN parameters
    ({"run": {"target": float("inf")}}, "run.target must be a finite number"),
    ({"env": {"reward_shift": [1]}}, "env.reward_shift must be a number"),  # was a TypeError traceback
    ({"run": {"device": "  "}}, "run.device may not be an empty string"),
])
def test_settings_of_the_wrong_kind_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("CartPole-v1", override)


@pytest.mark.parametrize("override, message", [
    ({"env": {"num_threads": 0}}, "env.num_threads must be positive"),  # was accepted
    ({"env": {"max_steps": 0}}, "env.max_steps must be positive"),  # was found only after the run started
    ({"policy": {"kind": "mlp", "hidden": [0]}}, "policy.hidden sizes must be positive"),
])
def test_out_of_range_settings_fail_validation(override, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("CartPole-v1", {"run": {"generations": 1}, **override}).validate()


def test_a_set_the_run_would_not_read_is_warned_about(tmp_path, capsys):
    status, err = _cli(capsys, "train", "--env", "CartPole-v1", "--generations", "1", "--policy", "linear",
                       "--set", "es.popsize=4", "--set", "ga.sigma=0.3", "--set", "policy.hidden=[4]",
                       "--set", "run.shard_size=2", "--out", str(tmp_path / "run"), "--quiet")
    assert status == 0
    for setting in ("ga.sigma", "policy.hidden", "run.shard_size"):
        assert f"--set {setting} (" in err and "has no effect on this run" in err


# -- files ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("chaos") / "run"
    Trainer(_config(), out).run()
    return out


def test_empty_hostile_and_incomplete_files_get_one_line_errors(run_dir, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt: empty file \(0 bytes\)"):
        load_file(empty)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "neuroevo-policy/1", "x": Payload()}, hostile)
    with pytest.raises(ValueError, match="hostile.pt: refused: it holds Python objects") as info:
        load_policy(hostile)
    assert "\n" not in str(info.value) and not (tmp_path / "ran").exists()

    record = torch.load(run_dir / "best_policy.pt", weights_only=True)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({k: v for k, v in record.items() if k != "policy"}, incomplete)
    with pytest.raises(ValueError, match="incomplete.pt: incomplete neuroevo-policy/1 file: no policy"):
        load_policy(incomplete)  # was KeyError: 'policy' (a traceback from neuroevo eval)
    malformed = tmp_path / "malformed.pt"
    torch.save({**record, "params": "x"}, malformed)
    with pytest.raises(ValueError, match="malformed.pt: the stored parameters are not a float tensor"):
        load_policy(malformed)


def test_resume_refuses_a_checkpoint_of_another_run(run_dir, tmp_path, capsys):
    other = tmp_path / "pendulum"
    Trainer(resolve_config("Pendulum-v1", {"run": {"generations": 1, "eval_episodes": 1, "device": "cpu"},
                                           "policy": {"kind": "linear"}, "es": {"popsize": 4}}), other).run()
    victim = tmp_path / "victim"
    import shutil

    shutil.copytree(run_dir, victim)
    shutil.copyfile(other / "checkpoints" / "last.pt", victim / "checkpoints" / "last.pt")
    before = {p.name: p.read_bytes() for p in victim.rglob("*") if p.is_file()}
    status, err = _cli(capsys, "train", "--resume", str(victim), "--quiet")
    assert status == 2 and "a checkpoint of another run (env.id 'Pendulum-v1'" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in victim.rglob("*") if p.is_file()} == before  # was overwritten


def test_atomic_write_keeps_the_umask_permissions_and_names_the_file_on_error(tmp_path):
    atomic_write(tmp_path / "a.json", lambda f: f.write(b"{}"))
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # was 0600 (mkstemp's)

    def full(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match=r"could not write .*a.json: No space left on device"):
        atomic_write(tmp_path / "a.json", full)
    assert (tmp_path / "a.json").read_bytes() == b"{}" and not list(tmp_path.glob(".*.tmp"))


# -- kills and resume ----------------------------------------------------------------------------------------------
def test_resume_drops_a_torn_row_and_stale_temporaries(tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    Trainer(_config(), straight).run()
    Trainer(_config(generations=2), run).run()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"generation": 3, "env_st')  # a row torn by a kill or a full disk: was a JSONDecodeError
    (run / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"half")  # a writer killed before its rename
    Trainer.resume(run, {"run": {"generations": 4}}).run()
    assert not list(run.rglob("*.tmp"))  # was left behind by every kill inside a write
    assert differences(run_record(straight)["metrics"], run_record(run)["metrics"]) == []


def test_a_run_killed_before_its_first_checkpoint_resumes_from_its_config(tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    Trainer(_config(), straight).run()
    Trainer(_config(), run).run()
    (run / "checkpoints" / "last.pt").unlink()  # killed after logging generation 1, before its checkpoint
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n")
    with pytest.raises(ValueError, match="already holds a run"):  # a fresh start is refused ...
        Trainer(_config(), run)
    resumed = Trainer.resume(run)  # ... and --resume was "no such file": the run could be neither resumed nor redone
    assert resumed.generation == 0
    resumed.run()
    assert differences(run_record(straight), run_record(run)) == []


# -- failures mid-run ----------------------------------------------------------------------------------------------
def test_an_env_that_raises_stops_with_a_checkpoint_and_the_resume_command(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(_config(generations=5, checkpoint_every=10), run)
    real, calls = trainer.evaluator.evaluate, []

    def crash_in_generation_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise ZeroDivisionError("the simulator divided by zero")
        return real(*args)

    monkeypatch.setattr(trainer.evaluator, "evaluate", crash_in_generation_3)
    with pytest.raises(RuntimeError, match=r"the simulator divided by zero \(generation 3\); checkpoint of "
                                           r"generation 2 written to .*; continue with: neuroevo train --resume"):
        trainer.run()  # was a bare ZeroDivisionError, and (checkpoint_every 10) no checkpoint at all
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["generation"] == 2


def test_a_full_disk_during_a_checkpoint_says_the_previous_one_is_intact(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(_config(generations=5), run)
    real = neuroevo.trainer.atomic_save

    def fill_at_generation_3(obj, path):
        if obj.get("generation") == 3:  # the checkpoint (best_policy.pt goes through here too)
            raise OSError(errno.ENOSPC, f"could not write {path}: No space left on device")
        real(obj, path)

    monkeypatch.setattr(neuroevo.trainer, "atomic_save", fill_at_generation_3)
    with pytest.raises(RuntimeError, match=r"No space left on device \(checkpoint of generation 3\); the previous "
                                           r"checkpoint, of generation 2, is intact at .*last.pt; continue with"):
        trainer.run()
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["generation"] == 2


# -- bad dynamics and long runs ------------------------------------------------------------------------------------
def test_members_whose_policy_output_is_not_finite_rank_last():
    env = neuroevo.make_env("CartPole-v1", 4, "cpu")
    policy = neuroevo.policies.make_policy("linear", 4, 2)
    params = torch.zeros(4, policy.num_params)
    params[1, 0], params[2, 3] = float("nan"), float("inf")
    result = neuroevo.evaluate(policy, params, env, 1, 50, seed=0)
    # was: argmax of NaN logits picked action 0 and those members scored like any other
    assert torch.isfinite(result.returns).tolist() == [True, False, False, True]


def test_a_run_with_a_directory_keeps_a_bounded_history(tmp_path, monkeypatch):
    monkeypatch.setattr(neuroevo.trainer, "HISTORY_WINDOW", 3)
    result = Trainer(_config(generations=5), tmp_path / "run").run()
    assert [row["generation"] for row in result.history] == [3, 4, 5]  # was every row: memory grew with the run
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 5
    assert len(Trainer(_config(generations=5)).run().history) == 5 <= HISTORY_WINDOW  # no directory: all rows


def test_a_lost_ray_head_is_reported_with_the_resume_command_and_the_driver_exits(tmp_path):
    """Chaos suite finding: with its Ray head (GCS) killed, a driver blocked in Ray calls until Ray aborted it 60 s
    later with a C++ log line: no checkpoint note, no resume command. A watchdog thread now notices within a few
    seconds, lets the trainer write its checkpoint and say how to continue, and exits with HEAD_LOST_STATUS."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port nothing listens on: a head that is gone
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = f"""
import threading
from neuroevo.distributed import evaluator as ev
ev.HEAD_CHECK_INTERVAL = 0.05
class Ray:
    @staticmethod
    def is_initialized():
        return True
e = ev.RayEvaluator.__new__(ev.RayEvaluator)
e.ray, e._closed = Ray(), threading.Event()
e.on_head_lost = lambda what: what + "; checkpoint written; continue with: neuroevo train --resume RUN"
e._watch_head("127.0.0.1:{port}")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    from neuroevo.distributed.evaluator import HEAD_LOST_STATUS

    assert done.returncode == HEAD_LOST_STATUS, done.stderr
    assert done.stderr.strip() == (f"neuroevo: error: the Ray head at 127.0.0.1:{port} does not answer (killed, or its "
                                   "node lost); checkpoint written; continue with: neuroevo train --resume RUN")

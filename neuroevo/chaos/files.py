"""Attack 3: bad files where a run expects its own. Truncated, corrupted, empty, garbage, hostile (a pickle that
would run a command), older-format, other-format, incomplete, malformed and wrong-task checkpoints and policy
files, given to ``neuroevo train --resume``, ``neuroevo eval`` and ``load_policy``: each must give a one-line
error naming the file and what is wrong, execute nothing, and change nothing else in the run directory. Then
a full disk (a small tmpfs, else an injected ``ENOSPC``) during a run: the previous checkpoint survives, the run
says so, and once there is room again ``--resume`` ends where the uninterrupted run ends."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import pickle
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from neuroevo.chaos import Outcome, Settings, tmpfs
from neuroevo.faults import differences, run_record

SMALL = ["--algo", "es", "--policy", "linear", "--seed", "1", "--set", "es.popsize=8", "--set", "run.eval_episodes=2",
         "--quiet"]


#: the kinds of bad file --quick tries
QUICK_KINDS = ("truncated to half", "hostile pickle in a torch file", "older format", "wrong task")


class _Hostile:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint does if it is ever unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cli(*args: str) -> tuple[int | None, str]:
    """``neuroevo ARGS`` in this process: (exit status, stderr); status None when an exception escaped (a
    traceback), with the exception as the text."""
    from neuroevo.cli import main

    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            status = main(list(args))
    except BaseException as exc:  # noqa: BLE001 - an escaping exception is what is counted
        return None, f"{type(exc).__name__}: {exc}"
    return status, err.getvalue()


def error_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not warnings."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("neuroevo: ")
            and "Warning" not in line]


def _snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _bad_files(good: Path, other_task: Path, marker: Path, fmt: str) -> dict[str, Callable[[Path], None]]:
    """name -> writes that kind of bad file at a path (``good``: a sound file of the kind expected)."""
    data = good.read_bytes()

    def flipped(p: Path) -> None:
        b = bytearray(data)
        for i in range(64, len(b), 61):
            b[i] ^= 0x5A
        p.write_bytes(bytes(b))

    def saved(obj: Any) -> Callable[[Path], None]:
        return lambda p: torch.save(obj, p)

    record = torch.load(good, weights_only=True)
    return {
        "truncated to half": lambda p: p.write_bytes(data[: len(data) // 2]),
        "truncated to 100 bytes": lambda p: p.write_bytes(data[:100]),
        "truncated by one byte": lambda p: p.write_bytes(data[:-1]),
        "zero-length": lambda p: p.write_bytes(b""),
        "bytes flipped": flipped,
        "random garbage": lambda p: p.write_bytes(os.urandom(len(data))),
        "text": lambda p: p.write_text('{"format": "neuroevo-checkpoint/1"}\n'),
        "hostile pickle in a torch file": saved({"format": fmt, "x": _Hostile(marker)}),
        "hostile plain pickle": lambda p: p.write_bytes(pickle.dumps(_Hostile(marker))),
        "older format": saved({**record, "format": fmt.split("/")[0] + "/0"}),
        "newer format": saved({**record, "format": fmt.split("/")[0] + "/2"}),
        "a list, not a table": saved([1, 2, 3]),
        "no format field": saved({k: v for k, v in record.items() if k != "format"}),
        "incomplete (a field missing)": saved({k: v for k, v in record.items() if k not in ("params", "optimizer")}),
        "malformed (parameters a string)": saved(_malformed(record)),
        "wrong task": lambda p: shutil.copyfile(other_task, p),
        "a directory": lambda p: p.mkdir(),
    }


def _malformed(record: dict[str, Any]) -> dict[str, Any]:
    if "params" in record:
        return {**record, "params": "not a tensor"}
    return {**record, "optimizer": "not a state", "solution": {**record["solution"], "params": "x"}}


def attack(settings: Settings) -> list[Outcome]:
    return [_bad_files_attack(settings), _full_disk_attack(settings)]


def _try(target: str, bad: Path, kind: str) -> tuple[int | None, str]:
    """Give ``bad`` to ``target`` (resume, eval or load_policy): (status, stderr) as :func:`cli`."""
    from neuroevo.checkpoint import load_policy

    if target == "resume":
        return cli("train", "--resume", str(bad.parent.parent), "--quiet")
    if target == "eval":
        return cli("eval", str(bad), "--episodes", "1", *(["--env", "CartPole-v1"] if kind == "wrong task" else []))
    try:
        load_policy(bad)
    except ValueError as exc:
        return 2, str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else escaping is what is counted
        return None, f"{type(exc).__name__}: {exc}"
    return 0, ""


def _file_problems(status: int | None, lines: list[str], bad: Path, marker: Path, run: Path,
                   before: dict[str, str]) -> list[str]:
    problems = []
    if status != 2:
        problems.append(f"status {status}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} error lines")
    if lines and str(bad) not in lines[0]:
        problems.append("the file is not named")
    if marker.exists():
        problems.append("the hostile payload RAN")
        marker.unlink()
    if _snapshot(run) != before:
        problems.append("the run directory changed")
    return problems


def _bad_files_attack(settings: Settings) -> Outcome:
    work = settings.work / "bad-files"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    outcome = Outcome("bad checkpoint and policy files (resume, eval, load_policy)",
                      command="neuroevo train --resume RUN | neuroevo eval FILE | load_policy(FILE)")
    good_run, other_run = work / "good", work / "pendulum"
    for args in (("--env", "CartPole-v1", "--generations", "2", "--out", str(good_run)),
                 ("--env", "Pendulum-v1", "--generations", "1", "--out", str(other_run))):
        status, err = cli("train", *args, *SMALL)
        if status != 0:
            outcome.check(False, f"the run to attack did not train: {err}")
            return outcome
    marker = work / "EXECUTED"
    targets = {
        "resume": (good_run / "checkpoints" / "last.pt", other_run / "checkpoints" / "last.pt",
                   "neuroevo-checkpoint/1"),
        "eval": (good_run / "best_policy.pt", other_run / "best_policy.pt", "neuroevo-policy/1"),
        "load_policy": (good_run / "best_policy.pt", other_run / "best_policy.pt", "neuroevo-policy/1"),
    }
    kinds = 0
    for target, (good, other, fmt) in targets.items():
        for kind, make in _bad_files(good, other, marker, fmt).items():
            if (target == "load_policy" and kind == "wrong task") or (settings.quick and kind not in QUICK_KINDS):
                continue  # load_policy takes no task to be wrong about
            kinds += 1
            run = work / f"case{kinds}"
            shutil.copytree(good_run, run)
            bad = run / good.relative_to(good_run)
            if target == "eval":
                bad = run / "bad.pt"
            bad.unlink(missing_ok=True)
            make(bad)
            before = _snapshot(run)
            status, err = _try(target, bad, kind)
            lines = error_lines(err)
            problems = _file_problems(status, lines, bad, marker, run, before)
            outcome.check(not problems, f"{target} / {kind}: {'; '.join(problems)}: {lines[:2]}")
            outcome.details.setdefault("messages", {})[f"{target} / {kind}"] = lines[0] if lines else err
            shutil.rmtree(run)
    outcome.details["kinds"] = kinds
    return outcome


def _grow(path: Path, size_kb: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def _injected_enospc(after_bytes: int):
    """Where mounting is not allowed: every write of ``atomic_write`` fails with ENOSPC once ``after_bytes``
    were written by this process (what a full disk, or /dev/full, answers)."""
    import neuroevo.checkpoint as checkpoint

    written = [0]
    original = checkpoint.os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = original(fd, *args, **kwargs)
        write = f.write

        def limited(b):
            written[0] += len(b)
            if written[0] > after_bytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(b)

        f.write = limited
        return f

    checkpoint.os.fdopen = fdopen
    try:
        yield
    finally:
        checkpoint.os.fdopen = original


def _disk_problems(status: int | None, lines: list[str], run: Path) -> list[str]:
    problems = []
    if status != 2 or len(lines) != 1:
        problems.append(f"status {status}, {len(lines)} error lines")
    elif "No space left" not in lines[0] or "--resume" not in lines[0] or not (
        "intact" in lines[0] or "written to" in lines[0] or "no checkpoint was written yet" in lines[0]
    ):
        problems.append("the message does not say what happened and where to continue")
    leftovers = list(run.rglob("*.tmp"))
    if leftovers:
        problems.append(f"temporaries left: {leftovers}")
    ckpt = run / "checkpoints" / "last.pt"
    if ckpt.exists():
        try:
            torch.load(ckpt, weights_only=True)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the previous checkpoint is unreadable: {exc}")
    return problems


def _full_disk_attack(settings: Settings) -> Outcome:
    work = settings.work / "full-disk"
    if work.exists():
        subprocess.run(["umount", "-l", str(work / "disk")], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    generations = 12 if settings.quick else 60
    train = ("--env", "CartPole-v1", "--generations", str(generations), *SMALL)
    outcome = Outcome("full disk during a run (tmpfs)",
                      command=f"neuroevo train {' '.join(train)} --out RUN on a small tmpfs, then --resume")
    with tmpfs(work / "roomy", 8192):  # a tmpfs where there is one: no waiting on a busy disk's fsync
        status, err = cli("train", *train, "--out", str(work / "roomy" / "straight"))
        if status != 0:
            outcome.check(False, f"the uninterrupted run failed: {err}")
            return outcome
        straight = run_record(work / "roomy" / "straight")
    sizes = [32] if settings.quick else list(range(24, 64, 2))  # quick: past the first checkpoint
    disk = work / "disk"
    for size in sizes:
        with tmpfs(disk, size) as mounted:
            outcome.details["tmpfs"] = mounted
            run = disk / "run"
            if mounted:
                status, err = cli("train", *train, "--out", str(run))
            else:  # no mounting here: the writer is told the disk is full after size KiB
                with _injected_enospc(size * 1024):
                    status, err = cli("train", *train, "--out", str(run))
            lines = error_lines(err)
            if status == 0:  # this size never filled: no attack happened
                outcome.details.setdefault("never filled", []).append(size)
                continue
            problems = _disk_problems(status, lines, run)
            if mounted:
                _grow(disk, 4096)  # room again: the run must continue to the uninterrupted end
            status, err2 = cli("train", "--resume", str(run), "--quiet")
            if status != 0:
                problems.append(f"--resume with room again failed: {error_lines(err2)[:1]}")
            else:
                diffs = differences(straight, run_record(run))
                if diffs:
                    problems.append(f"the resumed run differs: {diffs[:3]}")
            outcome.check(not problems, f"tmpfs {size} KiB: {'; '.join(problems)}: {lines[:1]}")
            outcome.details.setdefault("messages", {})[f"{size} KiB"] = lines[0] if lines else err
        shutil.rmtree(disk, ignore_errors=True)
    return outcome

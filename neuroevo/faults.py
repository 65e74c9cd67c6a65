"""Fault injection: runs killed, interrupted or paused on purpose, and the check that they lost nothing.

Shared by the chaos suite (``scripts/chaos.py``) and the cluster-launch tests. A promise of the form "a kill
loses no finished work" is tested in three steps: start a run as a child process (:func:`spawn`, in a session
of its own so that a signal reaches everything it started: Ray workers, a batch script's children), stop it at
some moment (:meth:`Child.kill`, :meth:`Child.signal`, or exactly between writing a file and renaming it into
place, through :class:`PauseGate`), resume it, and compare the result with an uninterrupted run
(:func:`run_record`, :func:`differences`).

Nothing here runs in a normal training run: :func:`pause_point` returns at once unless the environment
variable :data:`PAUSE_DIR_ENV` is set.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: set (tests only) to a directory: every file written through ``checkpoint.atomic_write`` whose name matches
#: :data:`PAUSE_MATCH_ENV` then waits, fully written but not yet renamed, while its marker file exists there
PAUSE_DIR_ENV = "NEUROEVO_FAULTS_PAUSE_DIR"
#: a glob over the file names that pause (default ``*``: every file)
PAUSE_MATCH_ENV = "NEUROEVO_FAULTS_PAUSE_MATCH"
#: the longest a paused writer waits for its marker to go before going on by itself (seconds)
PAUSE_TIMEOUT = 60.0
#: metrics that measure the machine, not the run: they differ between two runs of one seed
WALL_CLOCK_KEYS = ("time/", "dist/idle_fraction", "dist/worker_cpu_share", "dist/worker_cpu_seconds", "wall_time")

_pauses = itertools.count()


def pause_point(path: str | os.PathLike[str]) -> None:
    """Called by ``checkpoint.atomic_write`` after the temporary file is written and synced and before it
    is renamed to ``path``. With :data:`PAUSE_DIR_ENV` set, it creates a marker ``<pid>-<n>-<name>`` in that
    directory and waits while the marker exists (at most :data:`PAUSE_TIMEOUT` s), so that a harness can
    kill the writer at exactly this moment or delete the marker to let it go on."""
    pause_dir = os.environ.get(PAUSE_DIR_ENV)
    if not pause_dir:
        return
    name = Path(path).name
    if not fnmatch.fnmatch(name, os.environ.get(PAUSE_MATCH_ENV) or "*"):
        return
    marker = Path(pause_dir) / f"{os.getpid()}-{next(_pauses)}-{name}"
    marker.write_text(str(path))
    deadline = time.monotonic() + PAUSE_TIMEOUT
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    marker.unlink(missing_ok=True)


class PauseGate:
    """The harness's side of :func:`pause_point`: pass :meth:`env` to the child, then :meth:`wait` for its
    next paused write and either kill the child there or :meth:`release` the write."""

    def __init__(self, directory: str | os.PathLike[str], match: str = "*"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.match = match

    def env(self) -> dict[str, str]:
        return {PAUSE_DIR_ENV: str(self.directory), PAUSE_MATCH_ENV: self.match}

    def paused(self) -> list[Path]:
        """Markers of writes waiting now, oldest first."""
        return sorted(self.directory.iterdir(), key=lambda p: int(p.name.split("-")[1]))

    def wait(self, timeout: float, child: Child | None = None) -> Path:
        """The marker of the next paused write (waits up to ``timeout`` s; fails if ``child`` exits)."""
        wait_until(lambda: bool(self.paused()), timeout, child=child, what="a paused write")
        return self.paused()[0]

    @staticmethod
    def release(marker: Path) -> None:
        marker.unlink(missing_ok=True)

    def release_all(self) -> None:
        for marker in self.paused():
            self.release(marker)


class ChildExited(RuntimeError):
    """The child process ended before the condition a harness waited for."""


@dataclass
class Child:
    """A process started by :func:`spawn`, leader of its own session: signals go to its whole group."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child's process group (a no-op once it is gone)."""
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> int:
        """SIGKILL the whole group and reap the child; its exit status."""
        self.signal(signal.SIGKILL)
        return self.proc.wait()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit (:class:`subprocess.TimeoutExpired` after ``timeout`` s)."""
        return self.proc.wait(timeout)

    def output(self) -> str:
        """Everything the child wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill()


def spawn(
    args: Sequence[str], *, log: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Child:
    """Start ``args`` in a new session, stdout and stderr into the file ``log``; ``env`` is added to this
    process's environment."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(args), cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return Child(proc, log)


def neuroevo_command(*args: str) -> list[str]:
    """``neuroevo ARGS`` with this interpreter (the CLI as users run it, in a child process)."""
    return [sys.executable, "-m", "neuroevo", *args]


def wait_until(
    condition: Callable[[], bool], timeout: float, *, child: Child | None = None, what: str = "the condition",
    interval: float = 0.01,
) -> None:
    """Poll ``condition`` until it holds; :class:`TimeoutError` after ``timeout`` s, :class:`ChildExited`
    (with the tail of its output) as soon as ``child`` has exited without it holding."""
    deadline = time.monotonic() + timeout
    while not condition():
        if child is not None and not child.alive():
            if condition():
                return
            raise ChildExited(
                f"the child exited with status {child.proc.returncode} before {what}:\n{child.output()[-2000:]}"
            )
        if time.monotonic() > deadline:
            tail = child.output()[-2000:] if child is not None else ""
            raise TimeoutError(f"{what} did not happen within {timeout:g} s" + (f":\n{tail}" if tail else ""))
        time.sleep(interval)


def generations_logged(run_dir: str | os.PathLike[str]) -> int:
    """Rows in the run's metrics.jsonl (a row still being written is not counted)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


def run_record(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What a run produced, for :func:`differences`: its metrics rows, last checkpoint and best policy."""
    from neuroevo.checkpoint import load_file

    run_dir = Path(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    record: dict[str, Any] = {"metrics": rows, "checkpoint": load_file(run_dir / "checkpoints" / "last.pt")}
    if (run_dir / "best_policy.pt").exists():
        record["best_policy"] = load_file(run_dir / "best_policy.pt")
    return record


def differences(a: Any, b: Any, ignore: Iterable[str] = WALL_CLOCK_KEYS, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ, bit for bit (tensors by value and dtype, NaN equal to NaN), as readable
    paths; dictionary keys starting with one of ``ignore`` are skipped. An empty list: identical."""
    ignore = tuple(ignore)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if str(key).startswith(ignore):
                continue
            where = f"{path}/{key}"
            if key not in a or key not in b:
                out.append(f"{where}: only in {'the first' if key in a else 'the second'}")
            else:
                out += differences(a[key], b[key], ignore, where)
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, ignore, f"{path}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape
        if same and a.is_floating_point():
            same = torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
        elif same:
            same = torch.equal(a, b)
        return [] if same else [f"{path}: tensors differ ({a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)})"]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    if type(a) is not type(b) or a != b:
        return [f"{path}: {a!r} vs {b!r}"]
    return []

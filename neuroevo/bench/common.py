"""What every benchmark of ``neuroevo bench`` shares: how it times, how it describes the machine, how it
reports.

Timing: ``time.perf_counter()`` around the measured calls, with ``torch.cuda.synchronize()`` before and
after on CUDA (:func:`timed`). A figure is the median over its repeats (:func:`timed_repeats`). A call too
short to time alone is looped: a warm-up first calls it once (lazy initialization), then loops it for at
least ``min_s`` seconds (:func:`run_for`), which calibrates the calls per repeat; each repeat loops that
many calls, and the figure is the median over the repeats of the mean seconds per call
(:func:`seconds_per_call`). A population evaluation is timed whole, one ``rollout.evaluate`` call per
repeat after a short warm-up call (:func:`time_evaluate`): kernels, allocator, thread pools and
``torch.compile`` are warmed up outside the clock.

Figures on a shared machine vary with its load: every report prints the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from neuroevo.envs import VectorEnv
    from neuroevo.policies import Policy

WARMUP_STEPS = 16  # the warm-up evaluate call's episode cap (kernels, allocator, thread pools)

# The members every benchmark's populations are made of.
POLICIES = ("linear", "mlp")
HIDDEN = (64, 64)  # the MLP's hidden layers, tanh
NOISE_STD = 0.05  # every parameter: N(0, NOISE_STD^2), around the center when there is one

# -- timing ------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds of one ``fn()`` call (synchronized on CUDA), and what it returned."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def timed_repeats(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    """The median seconds of ``repeats`` timed ``fn()`` calls, and what the first one returned."""
    runs = [timed(fn, device) for _ in range(repeats)]
    return statistics.median(t for t, _ in runs), runs[0][1]


def run_for(fn: Callable[[], Any], device: torch.device, min_s: float) -> tuple[int, float]:
    """Loop ``fn()`` (synchronized after each call) for at least ``min_s`` seconds and 2 calls:
    (calls, seconds)."""
    calls, elapsed = 0, 0.0
    sync(device)
    start = time.perf_counter()
    while elapsed < min_s or calls < 2:
        fn()
        calls += 1
        sync(device)
        elapsed = time.perf_counter() - start
    return calls, elapsed


def seconds_per_call(fn: Callable[[], Any], device: torch.device, repeats: int, min_s: float) -> float:
    """Median over ``repeats`` of the mean seconds per call, each repeat looping ``fn`` >= ``min_s``."""
    fn()  # first call: lazy initialization
    calls, elapsed = run_for(fn, device, min_s)  # the warm-up also calibrates the calls per repeat
    per_repeat = max(1, math.ceil(min_s / (elapsed / calls)))

    def loop() -> None:
        for _ in range(per_repeat):
            fn()

    return statistics.median(timed(loop, device)[0] / per_repeat for _ in range(repeats))


def time_evaluate(
    policy: Policy, params: torch.Tensor, env: VectorEnv, repeats: int, seed: int, **kwargs: Any
) -> tuple[float, Any]:
    """Median seconds of one ``rollout.evaluate(policy, params, env, seed=seed, **kwargs)`` call over
    ``repeats`` (after a WARMUP_STEPS-step warm-up call), and the first timed call's ``Evaluation``.
    Closes ``env``. With a seed, every call runs the same episodes."""
    from neuroevo.rollout import evaluate

    run = partial(evaluate, policy, params, env, seed=seed, **kwargs)
    try:
        run(max_steps=WARMUP_STEPS)
        return timed_repeats(run, env.device, repeats)
    finally:
        env.close()


def guarded(fn: Callable[[], dict[str, Any]], what: str, notes: list[str]) -> dict[str, Any] | None:
    """``fn()``, or None with a note when the device runs out of memory (the bench goes on)."""
    try:
        return fn()
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        notes.append(f"{what}: skipped, out of memory")
        return None


# -- flags -------------------------------------------------------------------------------------------


def int_list(text: str) -> tuple[int, ...]:
    """'1024,16_384' -> (1024, 16384); an empty string is an empty list (skip that part)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def str_list(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c')."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def pick(explicit: Any, quick_value: Any, default: Any, quick: bool) -> Any:
    """An explicit flag wins, then the --quick value, then the default."""
    if explicit is not None:
        return explicit
    return quick_value if quick else default


# -- the machine -------------------------------------------------------------------------------------


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages (None where the OS has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7B13'."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """A CUDA device's name, or the CPU with its torch threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU, {threads} torch thread{'' if threads == 1 else 's'}"


def command_line() -> str:
    """The command that started this process, as one would type it again."""
    if sys.argv[0].endswith(".py"):  # scripts/bench_*.py
        return " ".join([".venv/bin/python", *sys.argv])
    return " ".join(["neuroevo", *sys.argv[1:]])


# -- the report --------------------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    """A rate to 3 significant digits, '-' for none: 1.53e+05."""
    return "-" if value is None else f"{value:.3g}"


def fmt_count(value: float) -> str:
    """A count or a rate in whole units with thousands separators: 14,226."""
    return f"{value:,.0f}"


@dataclass(frozen=True)
class Column:
    """One column of a :class:`Table`: its header ``label``, its ``width``, and ``cell(row) -> str``."""

    label: str
    width: int
    cell: Callable[[dict[str, Any]], str]
    left: bool = False  # aligned left (text) rather than right (figures)

    def render(self, text: str) -> str:
        return f"{text:<{self.width}}" if self.left else f"{text:>{self.width}}"


@dataclass(frozen=True)
class Table:
    """A fixed-width text table: one header line, then one line per row (a dict), columns one space apart."""

    columns: Sequence[Column]
    indent: str = ""

    def header(self) -> str:
        return self._line(c.label for c in self.columns)

    def row(self, row: dict[str, Any]) -> str:
        return self._line(c.cell(row) for c in self.columns)

    def lines(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        return [self.header(), *map(self.row, rows)]

    def _line(self, cells: Any) -> str:
        text = " ".join(c.render(t) for c, t in zip(self.columns, cells, strict=True))
        return (self.indent + text).rstrip()


def field(key: str, spec: str = "") -> Callable[[dict[str, Any]], str]:
    """A cell: ``row[key]`` formatted with ``spec`` ('' when the row has no such key)."""
    return lambda row: format(row[key], spec) if key in row else ""


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path``, creating its folder."""
    write_text(path, json.dumps(data, indent=2) + "\n")

"""``neuroevo bench gpu`` (or ``scripts/gpu_check.py``): every GPU check and benchmark in one prepared run, under
one time budget, for the short window of a lent GPU machine (docs/guides/gpu-check.md).

The parts, in this order (each documented in its module):

1. ``correctness`` (:mod:`~neuroevo.bench.gpu_correctness`): the device against the CPU: torch envs, the warp
   backend with and without its CUDA graph against the ``mujoco`` backend, one ES/GA/ARS ``tell``;
2. ``cartpole`` (:mod:`~neuroevo.bench.gpu_throughput`): CartPole-v1 env steps/s at 16K to 1M envs, eager,
   compiled and CUDA-graphed, against the machine's CPU;
3. ``forward``: the MLP(64, 64) member forward against the device's measured bandwidth;
4. ``warp``: MuJoCo Warp population evaluation against its raw physics rate, and the ``mujoco`` backend;
5. ``learning`` (:mod:`~neuroevo.bench.gpu_learning`): ARS on Hopper-v5 on warp to 3,000, the policy scored on
   gymnasium's own env; HalfCheetah-v5 to 4,000 if time is left;
6. ``cpu``: the machine's cores: the MuJoCo CPU bench on every core, and Ray scaling where Ray is installed;
7. ``lowrank`` (:mod:`~neuroevo.bench.lowrank`): the population forward of 1M-100M-parameter networks, low-rank ES
   (EGGROLL) against plain inference and the full-rank [P, D] path;
8. ``conv`` (:mod:`~neuroevo.bench.gpu_conv`): the conv policies' population forward (Nature and small networks,
   grouped convolutions over P members) against one plain network on P observations.

A new part is a function ``run(ctx) -> figures`` and
``summary(figures) -> rows`` in a module of its own, and one :data:`PARTS` entry.

The budget (``--budget`` seconds) is shared by weight (:attr:`Part.weight`). A part may use its own share plus
whatever the parts before it left unused: before it starts, the runner gives it the budget left less the shares
of the parts after it, and skips it, with the reason in its JSON, when that is less than :attr:`Part.min_s`.
Each part bounds itself within what it was given (:mod:`~neuroevo.bench.budget`: it stops growing its sizes and
notes the ones it skipped). ``OUT/<part>.json`` is written as the part measures (status "running") and when it
ends: "ok", "failed" (with the traceback) or "skipped" (with the reason). A rerun into the same folder skips the
parts whose JSON says "ok" and runs the others, so a killed or repeated run keeps what it measured; delete a
part's JSON to measure it again. At the end ``OUT/summary.json`` and ``OUT/summary.txt`` sum up every part in the
folder against the targets, with the machine and the date.

``--quick`` runs every part at tiny sizes on any device (the tests run it on the CPU), so the script is known to
work before a GPU window opens. Without a CUDA device the device is the CPU, and each part says what that means.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from neuroevo.bench import gpu_conv, gpu_correctness, gpu_learning, gpu_throughput, lowrank
from neuroevo.bench.budget import PartContext
from neuroevo.bench.common import Column, Table, command_line, cpu_model, device_name, load_average, write_text
from neuroevo.checkpoint import atomic_write_json

DEFAULT_BUDGET_S = 300.0
PACKAGES = ("torch", "gymnasium", "mujoco", "mujoco-warp", "warp-lang", "ray")


@dataclass(frozen=True)
class Part:
    """One part of the check: ``run(ctx) -> figures`` within ``ctx``'s time, ``summary(figures) -> rows``
    (``figure``, ``value``, ``target``, ``met``: True / False / None where there is no target here)."""

    number: int
    name: str
    title: str
    weight: float
    """its share of the budget, relative to the other parts run"""
    min_s: float
    """fewer seconds than this left for it: skipped (a full run)"""
    run: Callable[[PartContext], dict[str, Any]]
    summary: Callable[[dict[str, Any]], list[dict[str, Any]]]
    quick_min_s: float = 1.0
    """the same with ``--quick``"""


PARTS: tuple[Part, ...] = (
    Part(1, "correctness", "the device computes what the CPU computes", 0.14, 15.0, gpu_correctness.run,
         gpu_correctness.summary),
    Part(2, "cartpole", "CartPole-v1 population evaluation, env steps/s", 0.15, 10.0, gpu_throughput.run_cartpole,
         gpu_throughput.summary_cartpole),
    Part(3, "forward", "MLP(64, 64) member forward against the bandwidth", 0.07, 5.0, gpu_throughput.run_forward,
         gpu_throughput.summary_forward),
    Part(4, "warp", "MuJoCo Warp population evaluation against its physics rate", 0.20, 20.0,
         gpu_throughput.run_warp, gpu_throughput.summary_warp),
    Part(5, "learning", "ARS on warp to the target, scored on gymnasium", 0.34, 60.0, gpu_learning.run,
         gpu_learning.summary),
    Part(6, "cpu", "the machine's cores: MuJoCo CPU bench and Ray scaling", 0.10, 15.0, gpu_throughput.run_cpu,
         gpu_throughput.summary_cpu),
    Part(7, "lowrank", "low-rank ES population forward against plain inference and [P, D]", 0.08, 15.0,
         lowrank.run_gpu, lowrank.summary_gpu),
    Part(8, "conv", "conv policies' population forward (Atari): grouped conv against one network", 0.05, 10.0,
         gpu_conv.run, gpu_conv.summary),
)


# -- the machine ------------------------------------------------------------------------------------------------
def machine(device: torch.device) -> dict[str, Any]:
    """Which machine and when: what every figure of the check is quoted with."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": device_name(device),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "versions": versions,
        "load_average": load_average(),
        "command": command_line(),
    }


# -- the runner -------------------------------------------------------------------------------------------------
def part_path(out: Path, part: Part) -> Path:
    return out / f"{part.name}.json"


def read_part(out: Path, part: Part) -> dict[str, Any] | None:
    """The part's JSON in ``out``, or None (missing or unreadable: a part killed while writing runs again)."""
    try:
        return json.loads(part_path(out, part).read_text())
    except (OSError, ValueError):
        return None


def run_check(parts: Sequence[Part], out: Path, budget: float, device: torch.device, quick: bool = False,
              seed: int = 0, summarize: Sequence[Part] | None = None) -> dict[str, Any]:
    """Run ``parts`` in order into ``out`` within ``budget`` seconds (see the module); returns the summary of the
    parts of ``summarize`` (default: ``parts``) found in ``out``, run now or before."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    meta = {**machine(device), "budget_s": budget, "quick": quick}
    total = sum(p.weight for p in parts) or 1.0
    shares = {p.name: budget * p.weight / total for p in parts}
    todo = [p for p in parts if (read_part(out, p) or {}).get("status") != "ok"]
    print(f"GPU check on {meta['device_name']} ({device}), {meta['cores']} cores, budget {budget:.0f} s, into {out}"
          + (" (--quick)" if quick else ""), flush=True)
    for part in parts:
        path = part_path(out, part)
        if part not in todo:
            print(f"Part {part.number} {part.name}: finished before ({path}), skipped", flush=True)
            continue
        later = todo[todo.index(part) + 1:]
        given = budget - (time.perf_counter() - start) - sum(shares[p.name] for p in later)
        need = part.quick_min_s if quick else part.min_s
        record = {"part": part.name, "number": part.number, "title": part.title, "meta": meta,
                  "share_s": shares[part.name], "given_s": given}
        if given < need:
            reason = (f"skipped for time: {max(given, 0):.0f} s left for it (the budget left less the shares of the "
                      f"parts after it), it needs at least {need:.0f} s")
            print(f"Part {part.number} {part.name}: {reason}", flush=True)
            atomic_write_json(path, {**record, "status": "skipped", "reason": reason, "notes": [reason]})
            continue
        _run_part(part, record, path, PartContext(device, quick, time.perf_counter() + given, seed, out))
    return write_summary(out, parts if summarize is None else summarize, meta)


def _run_part(part: Part, record: dict[str, Any], path: Path, ctx: PartContext) -> None:
    print(f"Part {part.number} {part.name}: {part.title} ({record['given_s']:.0f} s, share "
          f"{record['share_s']:.0f} s)", flush=True)
    began = time.perf_counter()

    def save(figures: dict[str, Any], status: str = "running", **extra: Any) -> None:
        atomic_write_json(path, {**record, "status": status, "seconds": time.perf_counter() - began,
                                 "figures": figures, "notes": ctx.notes, **extra})

    ctx.save = save
    try:
        figures = part.run(ctx)
    except Exception as err:  # noqa: BLE001 -- recorded; a rerun retries the part
        save(ctx.figures, "failed", error=traceback.format_exc(), reason=f"{type(err).__name__}: {err}")
        print(f"Part {part.number} {part.name}: failed, {type(err).__name__}: {err}", flush=True)
        return
    save(figures, "ok")
    print(f"Part {part.number} {part.name}: ok in {time.perf_counter() - began:.1f} s -> {path}", flush=True)


# -- the summary ------------------------------------------------------------------------------------------------
def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


TABLE = Table([
    Column("part", 13, lambda r: f"{r['number']} {r['part']}", left=True),
    Column("figure", 72, lambda r: r["figure"], left=True),
    Column("value", 30, lambda r: r["value"], left=True),
    Column("target", 24, lambda r: r["target"], left=True),
    Column("", 7, lambda r: _verdict(r["met"]), left=True),
])


def summary_rows(out: Path, parts: Sequence[Part]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the table's rows, each part's status) from the parts' JSON in ``out``."""
    rows: list[dict[str, Any]] = []
    statuses: dict[str, dict[str, Any]] = {}
    for part in parts:
        data = read_part(out, part)
        head = {"number": part.number, "part": part.name}
        if data is None:
            statuses[part.name] = {"status": "not run"}
            continue
        status = data["status"]
        statuses[part.name] = {k: data.get(k) for k in ("status", "seconds", "reason")}
        statuses[part.name]["date"] = data.get("meta", {}).get("date")
        found: list[dict[str, Any]] = []
        if status in ("ok", "running"):
            try:
                found = part.summary(data.get("figures", {}))
            except (KeyError, TypeError, ValueError) as err:  # figures of an older version of the part
                found = [{"figure": f"(figures unreadable: {type(err).__name__}: {err})", "value": ""}]
            suffix = "" if status == "ok" else " (partial: the run ended inside this part)"
            rows += [{**head, "target": "", "met": None, **row, "figure": row["figure"] + suffix} for row in found]
        if status != "ok" or not found:  # the status itself, and why
            reason = data.get("reason") or next(iter(data.get("notes") or []), "")
            figure = "ok, no figures" if status == "ok" else status
            rows.append({**head, "figure": figure, "value": reason, "target": "", "met": None})
    return rows, statuses


def write_summary(out: Path, parts: Sequence[Part], meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` and ``summary.txt`` for the parts found in ``out``, print the table; returns the
    summary."""
    rows, statuses = summary_rows(out, parts)
    summary = {"meta": meta, "parts": statuses, "rows": rows}
    atomic_write_json(out / "summary.json", summary)
    gpu = meta["device_name"] + (f", CUDA {meta['cuda']}" if meta["cuda"] else "")
    lines = [
        f"neuroevo GPU check, {meta['date']}: {gpu}; CPU {meta['cpu']}, {meta['cores']} cores; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v),
        f"command: {meta['command']}",
        *(["--quick: tiny sizes; the figures show that every part runs, they measure nothing"] if meta["quick"]
          else []),
        "",
        *TABLE.lines(rows),
        "",
        "status per part: " + ", ".join(f"{name} {s['status']}" for name, s in statuses.items()),
    ]
    text = "\n".join(lines) + "\n"
    write_text(out / "summary.txt", text)
    print(text, flush=True)
    return summary


# -- the command line -------------------------------------------------------------------------------------------
def parse_parts(text: str | None) -> list[Part]:
    """'1,3,warp' -> those parts, in the check's order; None or '' -> all."""
    if not text:
        return list(PARTS)
    wanted = {w.strip() for w in text.split(",") if w.strip()}
    known = {str(p.number) for p in PARTS} | {p.name for p in PARTS}
    unknown = sorted(wanted - known)
    if unknown:
        names = ", ".join(f"{p.number} {p.name}" for p in PARTS)
        raise ValueError(f"--parts: unknown {', '.join(unknown)}; the parts are {names}")
    return [p for p in PARTS if str(p.number) in wanted or p.name in wanted]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The GPU check's flags on ``parser``."""
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for the whole check, shared "
                        f"by the parts (default {DEFAULT_BUDGET_S:.0f})")
    parser.add_argument("--out", default=None, help="folder of the parts' JSON and the summary (default "
                        "results/gpu/DATE); a rerun into it skips the parts already done")
    parser.add_argument("--parts", default=None, help="comma-separated part numbers or names (default: all: "
                        + ",".join(p.name for p in PARTS) + ")")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--quick", action="store_true", help="every part at tiny sizes: a check that it runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the members and their episodes")


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the check the flags ask for; returns the summary (also in OUT/summary.json)."""
    parts = parse_parts(args.parts)
    if args.budget <= 0:
        raise ValueError(f"--budget must be positive, got {args.budget}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch.cuda.is_available() is False")
    out = Path(args.out or Path("results") / "gpu" / datetime.now().strftime("%Y-%m-%d"))
    return run_check(parts, out, args.budget, device, args.quick, args.seed, summarize=PARTS)

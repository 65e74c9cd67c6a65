"""The chaos suite: attacks on neuroevo's promises, each run many times, with counts.

Seven attacks (``neuroevo.chaos.ATTACKS``), one module each: ``kills`` (SIGKILL at random moments and inside
checkpoint writes; every ``--resume`` starts and ends bit for bit on the uninterrupted run), ``ray`` (workers
killed during a run, the Ray head killed), ``files`` (truncated, corrupt, empty, wrong-task, older-format,
hostile and incomplete checkpoints and policy files; a full disk during a checkpoint write), ``config`` (fuzzed
task cards and ``--set`` values), ``dynamics`` (NaN/inf policies, envs returning NaN or raising mid-episode),
``soak`` (a long run with its memory, open files and checkpoint size sampled), ``ray-soak`` (a Ray run of an
hour whose workers are SIGKILLed every minute or two, in lockstep with the local run, sampled the same way).

Each attack returns an :class:`Outcome`: how many times it was tried, how many survived, and what failed.
``scripts/chaos.py`` runs them (``--quick``: small counts, what the tests run) and writes
``results/chaos/<attack>.json`` and ``results/chaos/summary.md``. The kill harness is :mod:`neuroevo.faults`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import random
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    """One attack's figures: each :meth:`check` is one attempt; a failed one is kept with what went wrong."""

    attack: str
    command: str = ""
    tried: int = 0
    survived: int = 0
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, ok: bool, what: str) -> bool:
        self.tried += 1
        if ok:
            self.survived += 1
        else:
            self.failures.append(what)
        return ok

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Settings:
    """What every attack gets: a scratch directory, the random generator of the kill moments, quick or full."""

    work: Path
    quick: bool
    rng: random.Random
    log: Callable[[str], None] = print
    soak_generations: int = 20_000
    ray_soak_minutes: float = 60.0
    out: Path | None = None
    """where the results go (``--out``): an attack that samples as it goes writes its samples there"""


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[bool]:
    """A tmpfs of ``size_kb`` KiB mounted at ``path`` while the block runs; yields False (and mounts nothing)
    where this machine does not allow mounting (not root, a container without the capability)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                                 capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


#: attack name -> the module of neuroevo.chaos whose ``attack(settings)`` runs it
ATTACKS = {"kills": "kills", "ray": "ray_attacks", "files": "files", "config": "config_fuzz",
           "dynamics": "dynamics", "soak": "soak", "ray-soak": "ray_soak"}
#: the attacks that start Ray (tests run them beside a shared Ray instance)
RAY_ATTACKS = ("ray", "ray-soak")


def _attack(name: str) -> Callable[[Settings], list[Outcome]]:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    return importlib.import_module(f"neuroevo.chaos.{ATTACKS[name]}").attack


def run(names: list[str], settings: Settings, out: Path | None = None) -> list[Outcome]:
    """Run the named attacks; with ``out``, each attack's outcomes go to ``out/<name>.json`` as it finishes
    (a rerun of the script redoes only what it is asked for) and ``out/summary.md`` is rebuilt."""
    outcomes: list[Outcome] = []
    for name in names:
        attack = _attack(name)
        start = time.perf_counter()
        (settings.work / name).mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # the attacks provoke warnings on purpose; their outcomes say what counts
            warnings.simplefilter("ignore")
            results = attack(dataclasses.replace(settings, work=settings.work / name, out=out))
        for outcome in results:
            outcome.seconds = round(time.perf_counter() - start, 1)
            settings.log(f"{outcome.attack}: {outcome.survived}/{outcome.tried} survived"
                         + (f"; FAILED: {outcome.failures[:3]}" if outcome.failures else ""))
        outcomes += results
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            payload = {"quick": settings.quick, "outcomes": [o.to_dict() for o in results]}
            (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    if out is not None:
        (out / "summary.md").write_text(summary_table(out))
    return outcomes


def summary_table(out: Path) -> str:
    """The markdown table of every ``<attack>.json`` in ``out``: attack, tried, survived, seconds."""
    lines = ["| attack | tried | survived | seconds |", "|---|---:|---:|---:|"]
    for name in ATTACKS:
        path = out / f"{name}.json"
        if path.exists():
            for o in json.loads(path.read_text())["outcomes"]:
                lines.append(f"| {o['attack']} | {o['tried']} | {o['survived']} | {o['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("attacks", nargs="*", default=list(ATTACKS), help=f"any of {', '.join(ATTACKS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="a few of each (what the tests run)")
    parser.add_argument("--work", default="/tmp/neuroevo-chaos", help="scratch directory for the runs")
    parser.add_argument("--out", help="write <attack>.json and summary.md here (e.g. results/chaos)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--soak-generations", type=int, default=20_000, help="generations of the soak run")
    parser.add_argument("--ray-soak-minutes", type=float, default=60.0, help="wall time of the Ray soak run")
    args = parser.parse_args(argv)
    settings = Settings(Path(args.work), args.quick, random.Random(args.seed), soak_generations=args.soak_generations,
                        ray_soak_minutes=args.ray_soak_minutes)
    outcomes = run(args.attacks, settings, Path(args.out) if args.out else None)
    failed = [o for o in outcomes if o.failures]
    for o in failed:
        print(f"{o.attack}: {len(o.failures)} failed", *o.failures, sep="\n  ", file=sys.stderr)
    return 1 if failed else 0

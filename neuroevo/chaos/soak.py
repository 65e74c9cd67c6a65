"""Attack 6: a soak run. A long CartPole-v1 run (20,000 generations by default, a checkpoint every generation)
as a child process, its resident memory, open file descriptors and checkpoint size sampled as it goes: each
must stay flat (not grow with the generations). Samples go to ``soak.jsonl`` beside the run; a rerun of the
script resumes a soak that was cut off (``--resume``) and keeps its samples."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from neuroevo.chaos import Outcome, Settings, tmpfs
from neuroevo.faults import neuroevo_command, spawn

ARGS = ("--env", "CartPole-v1", "--algo", "es", "--policy", "linear", "--seed", "7", "--set", "es.popsize=8",
        "--set", "run.eval_every=100", "--set", "run.eval_episodes=2", "--set", "env.max_steps=20",
        "--set", "run.checkpoint_every=10", "--quiet")
#: growth allowed between the sample at 10% of the run and the last one
RSS_SLACK_MB = 4.0


def process_usage(pid: int | str) -> tuple[float, int] | None:
    """Resident memory (MiB) and open file descriptors of the process ``pid`` now; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rss_kb = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    return (rss_kb[0] / 1024, fds) if rss_kb else None  # no VmRSS: exited, not yet reaped


def sample(pid: int, run: Path) -> dict[str, Any] | None:
    """RSS (MiB), open file descriptors, checkpoint size (bytes) and generation of the process ``pid`` now."""
    usage = process_usage(pid)
    if usage is None:
        return None
    rss, fds = usage
    ckpt = run / "checkpoints" / "last.pt"
    metrics = run / "metrics.jsonl"
    return {"t": time.time(), "rss_mb": round(rss, 2), "fds": fds,
            "checkpoint_bytes": ckpt.stat().st_size if ckpt.exists() else None,
            "metrics_bytes": metrics.stat().st_size if metrics.exists() else 0}


def attack(settings: Settings) -> list[Outcome]:
    # On a tmpfs where one can be mounted: the soak measures the process, not a busy disk's fsync
    disk = settings.work / "disk"
    with tmpfs(disk, 512 * 1024) if settings.quick else contextlib.nullcontext(False):
        return _soak(settings, disk)


def _soak(settings: Settings, disk: Path) -> list[Outcome]:
    generations = 20 if settings.quick else settings.soak_generations
    run, log = disk / "run", settings.work / "soak.jsonl"
    outcome = Outcome(f"soak: {generations} generations of CartPole-v1, memory / files / checkpoint sampled",
                      command=f"neuroevo train {' '.join(ARGS)} --generations {generations} --out RUN")
    resume = (run / "checkpoints" / "last.pt").exists() and not settings.quick
    if not resume:
        log.unlink(missing_ok=True)
        if run.exists():
            import shutil

            shutil.rmtree(run)
    args = (neuroevo_command("train", "--resume", str(run), "--quiet") if resume
            else neuroevo_command("train", *ARGS, "--generations", str(generations), "--out", str(run)))
    interval = 0.1 if settings.quick else 5.0
    with spawn(args, log=settings.work / "soak.log") as child, open(log, "a") as out:
        while child.alive():
            row = sample(child.pid, run)
            if row is not None:
                row["generation"] = _generation(run)
                out.write(json.dumps(row) + "\n")
                out.flush()
            time.sleep(interval)
        status = child.wait()
    if status != 0:
        outcome.check(False, f"the soak run exited with {status}: {child.output()[-400:]}")
        return [outcome]
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [_judge(outcome, rows, generations)]


def _generation(run: Path) -> int:
    """The last generation logged (read from the end of metrics.jsonl)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        lines = [line for line in f.read().splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            return int(json.loads(line)["generation"])
        except (ValueError, KeyError):
            continue
    return 0


def _judge(outcome: Outcome, rows: list[dict[str, Any]], generations: int) -> Outcome:
    """Flat: from the first sample past 10% of the generations to the last, RSS grew at most RSS_SLACK_MB, the
    descriptors by none, and the checkpoint by at most 1%."""
    warm = [r for r in rows if r["generation"] >= generations // 10 and r["checkpoint_bytes"]]
    if len(warm) < 2:
        outcome.check(False, f"too few samples past 10% of the run ({len(warm)})")
        return outcome
    first, last = warm[0], warm[-1]
    rss_growth = last["rss_mb"] - first["rss_mb"]
    fds = [r["fds"] for r in warm]
    sizes = [r["checkpoint_bytes"] for r in warm]
    outcome.details = {
        "samples": len(rows), "generations": generations, "from_generation": first["generation"],
        "to_generation": last["generation"],
        "rss_mb": [first["rss_mb"], last["rss_mb"], max(r["rss_mb"] for r in warm)],
        "rss_growth_mb": round(rss_growth, 2), "fds": [min(fds), max(fds)],
        "checkpoint_bytes": [min(sizes), max(sizes)], "metrics_bytes": last["metrics_bytes"],
    }
    outcome.check(rss_growth <= RSS_SLACK_MB, f"resident memory grew {rss_growth:.1f} MiB")
    outcome.check(fds[-1] <= fds[0], f"open file descriptors went from {fds[0]} to {fds[-1]}")
    outcome.check(max(sizes) <= min(sizes) * 1.01, f"the checkpoint grew from {min(sizes)} to {max(sizes)} bytes")
    return outcome

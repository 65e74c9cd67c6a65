"""Attack 6b: a Ray run of an hour with worker kills. A CartPole-v1 run on 2 Ray workers and the same run evaluated
locally go on in lockstep, generation by generation, for ``--ray-soak-minutes`` of wall time; every metric of every
generation (but wall times and the ``dist/`` counters) must be equal. Meanwhile workers die by SIGKILL from outside
Ray (:func:`~neuroevo.chaos.ray_attacks.sigkill`), every 30 to 150 s: half of the time the worker that was just
sent a shard (with that shard in flight, and sometimes the other worker too), the other half whichever worker at a
random moment. The driver's resident memory and open file descriptors, the workers' memory and the checkpoint size
are sampled every 10 s into ``ray-soak-samples.jsonl`` (in ``--out``, else the scratch directory): they must stay
flat. Both runs checkpoint every 100 generations; a rerun of the script with the same ``--work`` continues an
interrupted soak where its checkpoints and samples left it."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from neuroevo.chaos import Outcome, Settings
from neuroevo.chaos.ray_attacks import _config, sigkill
from neuroevo.chaos.soak import process_usage
from neuroevo.faults import WALL_CLOCK_KEYS, differences

WORKERS = 2
#: generations between the two runs' checkpoints
CHECKPOINT_EVERY = 100
#: seconds between samples (full run; --quick samples every second)
SAMPLE_EVERY = 10.0
#: growth allowed between the median of the first and of the last quarter of the samples past the first 10%
RSS_SLACK_MB = 8.0
FDS_SLACK = 2
#: seconds between kill moments: uniform between these (full run, --quick)
KILL_EVERY = (30.0, 150.0)
KILL_EVERY_QUICK = (3.0, 8.0)


def _last(path: Path) -> dict[str, Any] | None:
    rows = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    for line in reversed(rows):
        try:
            return json.loads(line)
        except json.JSONDecodeError:  # a row torn by a kill
            continue
    return None


COUNTS = ("kills", "kill_moments", "in_flight_kills", "several_at_once", "mismatched_generations", "first_mismatch")


def attack(settings: Settings) -> list[Outcome]:
    import ray

    from neuroevo.distributed import connect

    minutes = 0.5 if settings.quick else settings.ray_soak_minutes
    runs = {"ray": settings.work / "ray", "local": settings.work / "local"}
    samples = (settings.out or settings.work) / "ray-soak-samples.jsonl"
    previous = _last(samples)
    if previous is None or not all((d / "checkpoints" / "last.pt").exists() for d in runs.values()):
        for d in runs.values():
            shutil.rmtree(d, ignore_errors=True)
        samples.parent.mkdir(parents=True, exist_ok=True)
        samples.write_text("")
        previous = None
    low, high = KILL_EVERY_QUICK if settings.quick else KILL_EVERY
    outcome = Outcome(f"Ray run of {minutes:g} min on {WORKERS} workers, workers SIGKILLed every {low:g}-{high:g} s",
                      command="neuroevo.chaos.ray_soak: Trainer(workers=2) and Trainer(workers=0) in lockstep")
    started = connect(num_cpus=WORKERS)
    soak = _Soak(settings, runs, samples, previous)
    try:
        soak.run(minutes)
    except Exception as err:  # noqa: BLE001 - the run dying is the failure counted
        outcome.check(False, f"the Ray run stopped after {soak.count['kills']} kills: {err}")
        return [outcome]
    finally:
        soak.stop.set()
        if started:
            ray.shutdown()
    count = soak.count
    for _ in range(max(count["kills"], 1)):
        outcome.check(soak.same and count["kills"] > 0, f"{count['kills']} kills, {count['mismatched_generations']} "
                      f"generations differ from the local run (first: {count['first_mismatch']})")
    rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    outcome.details = {**count, "generations": soak.generation, "minutes": round(rows[-1]["elapsed_s"] / 60, 1)}
    flat = Outcome(f"Ray run of {minutes:g} min: driver memory / files, checkpoint sampled", command=outcome.command)
    return [outcome, _judge(flat, rows)]


class _Soak:
    """The two runs in lockstep, the killer and the sampler threads, and the counts they keep."""

    def __init__(self, settings: Settings, runs: dict[str, Path], samples: Path, previous: dict[str, Any] | None):
        self.settings, self.runs, self.samples = settings, runs, samples
        self.count: dict[str, Any] = {k: (previous or {}).get(k, None if k == "first_mismatch" else 0) for k in COUNTS}
        self.elapsed = float(previous["elapsed_s"]) if previous else 0.0
        self.session = int(previous.get("session", 0)) + 1 if previous else 1  # processes that ran it so far
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.pending = False  # an in-flight kill asked for by the killer, done by the next submission
        self.dead: set[int] = set()
        self.same = False
        self.generation = 0
        self.trainer: Any = None
        self.evaluator: Any = None
        self.start = 0.0

    def run(self, minutes: float) -> None:
        from neuroevo.trainer import Trainer

        every = 5 if self.settings.quick else CHECKPOINT_EVERY
        if self.elapsed or self.count["kills"]:
            ray_run = Trainer.resume(self.runs["ray"], {"run": {"workers": WORKERS}})
            local = Trainer.resume(self.runs["local"])
            while local.generation < ray_run.generation:  # killed between the two checkpoints
                local.step()
            while ray_run.generation < local.generation:
                ray_run.step()
        else:
            config = _config(10**9, eval_every=10)  # the budget is the wall time
            ray_run, local = Trainer(config, self.runs["ray"], workers=WORKERS), Trainer(config, self.runs["local"])
        self.trainer = ray_run
        self.evaluator = ray_run.evaluator
        submit = self.evaluator._submit

        def submit_and_maybe_kill(generation, worker, index):
            ref = submit(generation, worker, index)
            with self.lock:
                if self.pending:
                    self.pending = False
                    others = [w for w in list(self.evaluator._workers.values()) if w is not worker]
                    self._kill([worker, *(others if self.settings.rng.random() < 0.5 else [])], in_flight=True)
            return ref

        self.evaluator._submit = submit_and_maybe_kill
        self.start = time.monotonic() - self.elapsed
        threads = [threading.Thread(target=f, daemon=True) for f in (self._killer, self._sampler)]
        for thread in threads:
            thread.start()
        while time.monotonic() - self.start < minutes * 60:
            ray_row, local_row = ray_run.step(), local.step()
            self.generation = ray_run.generation
            diffs = differences(local_row, ray_row, (*WALL_CLOCK_KEYS, "dist/"))
            if diffs:
                with self.lock:
                    self.count["mismatched_generations"] += 1
                    self.count["first_mismatch"] = (self.count["first_mismatch"]
                                                    or f"generation {ray_run.generation}: {diffs[:2]}")
            if ray_run.generation % every == 0:
                local.save_checkpoint()
                ray_run.save_checkpoint()
        self.stop.set()
        for thread in threads:
            thread.join()
        local.save_checkpoint()
        ray_run.save_checkpoint()
        self.same = self.count["mismatched_generations"] == 0 and not differences(
            ray_run.optimizer.state_dict(), local.optimizer.state_dict())
        ray_run.close()

    def _kill(self, victims: list[Any], in_flight: bool) -> None:
        victims = [v for v in victims if v.id not in self.dead]
        done = [v for v in victims if sigkill(v)]
        self.dead.update(v.id for v in done)
        if done:
            self.count["kills"] += len(done)
            self.count["kill_moments"] += 1
            self.count["in_flight_kills"] += in_flight
            self.count["several_at_once"] += len(done) > 1

    def _killer(self) -> None:
        rng = self.settings.rng
        while not self.stop.wait(rng.uniform(*(KILL_EVERY_QUICK if self.settings.quick else KILL_EVERY))):
            with self.lock:
                if rng.random() < 0.5:
                    self.pending = True
                else:
                    workers = [w for w in list(self.evaluator._workers.values()) if w.id not in self.dead]
                    if workers:
                        self._kill([rng.choice(workers)], in_flight=False)

    def _sampler(self) -> None:
        pid = os.getpid()
        with open(self.samples, "a") as out:
            while not self.stop.wait(1.0 if self.settings.quick else SAMPLE_EVERY):
                driver = process_usage(pid)
                workers = [process_usage(w.where.get("pid", 0)) for w in list(self.evaluator._workers.values())]
                ckpt = self.runs["ray"] / "checkpoints" / "last.pt"
                with self.lock:
                    row = {"t": time.time(), "elapsed_s": round(time.monotonic() - self.start, 1),
                           "session": self.session, "generation": self.trainer.generation, **self.count,
                           "driver_rss_mb": round(driver[0], 2) if driver else None,
                           "driver_fds": driver[1] if driver else None,
                           "worker_rss_mb": [round(w[0], 1) for w in workers if w],
                           "checkpoint_bytes": ckpt.stat().st_size if ckpt.exists() else None}
                out.write(json.dumps(row) + "\n")
                out.flush()


def _judge(outcome: Outcome, rows: list[dict[str, Any]]) -> Outcome:
    """Flat: past the first 10% of the samples, the median of the last quarter is at most RSS_SLACK_MB (memory) and
    FDS_SLACK (descriptors) above the first quarter's; the checkpoint stays within 1% of its size in each session (a
    resumed run's checkpoint is a few hundred bytes larger once: its config, read back from the checkpoint, pickles
    without the shared strings of the original)."""
    warm = [r for r in rows[len(rows) // 10:] if r["driver_rss_mb"] is not None and r["checkpoint_bytes"]]
    if len(warm) < 8:
        outcome.check(False, f"too few samples past 10% of the run ({len(warm)})")
        return outcome
    quarter = len(warm) // 4

    def median(key: str, part: list[dict[str, Any]]) -> float:
        values = sorted(r[key] for r in part)
        return values[len(values) // 2]

    first, last = warm[:quarter], warm[-quarter:]
    rss = median("driver_rss_mb", last) - median("driver_rss_mb", first)
    fds = median("driver_fds", last) - median("driver_fds", first)
    sizes = [r["checkpoint_bytes"] for r in warm]
    sessions: dict[int, list[int]] = {}
    for r in rows:
        if r["checkpoint_bytes"]:
            sessions.setdefault(r.get("session", 1), []).append(r["checkpoint_bytes"])
    grown = {n: (min(b), max(b)) for n, b in sessions.items() if max(b) > min(b) * 1.01}
    workers = [sum(r["worker_rss_mb"]) / max(len(r["worker_rss_mb"]), 1) for r in warm if r["worker_rss_mb"]]
    outcome.details = {
        "samples": len(rows), "from_generation": warm[0]["generation"], "to_generation": warm[-1]["generation"],
        "driver_rss_mb_median_first_last_quarter": [median("driver_rss_mb", first), median("driver_rss_mb", last)],
        "driver_rss_mb_max": max(r["driver_rss_mb"] for r in warm),
        "driver_fds_min_max": [min(r["driver_fds"] for r in warm), max(r["driver_fds"] for r in warm)],
        "worker_rss_mb_min_max": [round(min(workers), 1), round(max(workers), 1)] if workers else None,
        "checkpoint_bytes": [min(sizes), max(sizes)], "sessions": len(sessions),
    }
    outcome.check(rss <= RSS_SLACK_MB, f"driver resident memory grew {rss:.1f} MiB")
    outcome.check(fds <= FDS_SLACK, f"driver open file descriptors grew by {fds}")
    outcome.check(not grown, f"the checkpoint grew (session: (smallest, largest) bytes): {grown}")
    return outcome

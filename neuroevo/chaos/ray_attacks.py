"""Attack 2: Ray. Workers killed at random during runs on 2 to 4 workers, each by a SIGKILL to its process from
outside Ray (:func:`sigkill`; the one right after its shard was sent, so with that shard in flight; sometimes
several at once, up to all of them; in the 2-worker run both workers in two consecutive generations): the run must
finish with the trajectory of the local (``workers=0``) run, bit for bit. The Ray head killed under a
``neuroevo train --workers 2`` run (its GCS server process, as when the head node is lost): a one-line error with
the checkpoint and the resume command, and ``--resume`` ends where an uninterrupted run ends (every metric but wall
times and the ``dist/`` transport counters, which count the new workers' first synchronization)."""

from __future__ import annotations

import collections
import functools
import os
import shutil
import signal
import time
from typing import Any

import torch

from neuroevo.chaos import Outcome, Settings
from neuroevo.faults import (
    WALL_CLOCK_KEYS,
    differences,
    generations_logged,
    neuroevo_command,
    run_record,
    spawn,
    wait_until,
)


def _config(generations: int, **run: Any) -> Any:
    from neuroevo.config import resolve_config

    return resolve_config("CartPole-v1", {
        "run": {"algo": "es", "seed": 4, "generations": generations, "target": None, "eval_episodes": 2,
                "device": "cpu", "shard_size": 2, **run},
        "env": {"max_steps": 60},
        "policy": {"kind": "linear", "normalize_obs": True},
        "es": {"popsize": 16},
    })


def sigkill(worker: Any) -> bool:
    """Kill a Ray worker of a :class:`~neuroevo.distributed.RayEvaluator` as a crash or the kernel's OOM killer
    would: SIGKILL to its process (the pid its ``ready()`` answered), from outside Ray. False if it was gone."""
    try:
        os.kill(int(worker.where["pid"]), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _trajectory(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if not k.startswith(("time/", "dist/"))} for row in history]


def attack(settings: Settings) -> list[Outcome]:
    outcomes = [_worker_kills(settings)]
    if not settings.quick:
        outcomes.append(_head_kill(settings))
    return outcomes


def _moments(settings: Settings, workers: int, generations: int, kills: int) -> dict[tuple[int, int], int]:
    """(generation, n-th submission in it) -> how many workers die there: a random generation after the first
    (whose replicas are synchronized first) and a random submission in it; half of them take one worker, the
    others 2 to all of them at once."""
    shards = 16 // 2  # popsize / shard_size
    slots = [(g, n) for g in range(2, generations + 1) for n in range(1, shards + 1)]
    return {slot: 1 if settings.rng.random() < 0.5 else settings.rng.randint(2, workers)
            for slot in settings.rng.sample(slots, kills)}


def _worker_kills(settings: Settings) -> Outcome:
    import ray

    from neuroevo.distributed import connect
    from neuroevo.trainer import Trainer

    # (workers, generations, kill moments: (generation, n-th submission in it) -> workers killed there)
    # --quick: one worker lost in generation 2, its shard in flight
    # full: 2 workers, both killed in two consecutive generations (a run that once ended "every Ray worker is
    # lost"), then random moments on 2, 3 and 4 workers
    plan = ([(2, 2, {(2, 1): 1})] if settings.quick else
            [(2, 4, {(2, 1): 2, (3, 1): 2})] + [(w, 12, _moments(settings, w, 12, 5)) for w in (2, 3, 4)])
    outcome = Outcome("Ray workers SIGKILLed at random (in flight, several at once), 2-4 workers",
                      command="neuroevo.chaos.ray_attacks: Trainer(workers=W) with workers SIGKILLed vs workers=0")
    started = connect(num_cpus=max(w for w, _, _ in plan))
    try:
        for run, (workers, generations, moments) in enumerate(plan):
            local = Trainer(_config(generations)).run()
            trainer = Trainer(_config(generations), workers=workers)
            evaluator: Any = trainer.evaluator
            submit, submitted = evaluator._submit, collections.Counter[int]()
            killed: list[tuple[int, int, int]] = []
            dead: set[int] = set()  # ids of the workers killed (a dead one stays listed until its loss is seen)

            def submit_and_maybe_kill(generation, worker, index, evaluator=evaluator, submit=submit, killed=killed,
                                      moments=moments, submitted=submitted, dead=dead):
                ref = submit(generation, worker, index)
                call = generation.spec.call
                submitted[call] += 1
                at_once = moments.get((call, submitted[call]), 0)
                if at_once:
                    others = [w for w in evaluator._workers.values() if w is not worker and w.id not in dead]
                    victims = [worker, *settings.rng.sample(others, min(at_once - 1, len(others)))]  # the first's
                    victims = [v for v in victims if v.id not in dead]  # shard is in flight
                    for victim in victims:
                        if sigkill(victim):
                            dead.add(victim.id)
                            killed.append((call, index, len(victims)))
                return ref

            evaluator._submit = submit_and_maybe_kill
            name = f"{workers} workers" + (", both in two consecutive generations" if run == 0 and not settings.quick
                                           else "")
            try:
                result = trainer.run()
            except Exception as err:  # noqa: BLE001
                for _ in range(max(len(killed), 1)):
                    outcome.check(False, f"{name}: the run stopped after {len(killed)} kills: {err}")
                continue
            same = (_trajectory(result.history) == _trajectory(local.history)
                    and torch.equal(result.solution, local.solution))
            lost = int(sum(row.get("dist/workers_lost", 0) for row in result.history))
            for call, index, at_once in killed:
                outcome.check(same, f"{name}, kill in generation {call} (shard {index}, {at_once} at "
                              "once): the trajectory differs from the local run")
            outcome.details[name] = {"kills": len(killed), "workers_lost_logged": lost,
                                     "killed_several_at_once": sum(1 for k in killed if k[2] > 1),
                                     "identical_to_local": same}
    finally:
        if started:
            ray.shutdown()
    return outcome


#: head kills of the full run (each a run of its own)
HEAD_KILLS = 3


def _ray_processes(session: int, name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session:
                continue
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ProcessLookupError):
            continue
        if name in cmdline:
            pids.append(int(entry))
    return pids


def _head_kill(settings: Settings) -> Outcome:
    work = settings.work / "head"
    shutil.rmtree(work, ignore_errors=True)
    args = ("--env", "CartPole-v1", "--algo", "es", "--seed", "2", "--generations", "12", "--policy", "linear",
            "--set", "es.popsize=16", "--set", "run.eval_episodes=2", "--workers", "2", "--quiet")
    outcome = Outcome("Ray head (GCS) killed under neuroevo train --workers 2",
                      command=f"neuroevo train {' '.join(args)} --out RUN; kill the head; --resume RUN")
    with spawn(neuroevo_command("train", *args, "--out", str(work / "straight")), log=work / "straight.log") as c:
        if c.wait(600) != 0:
            outcome.check(False, f"the uninterrupted run failed: {c.output()[-300:]}")
            return outcome
    for attempt in range(HEAD_KILLS):
        run = work / f"killed{attempt}"
        with spawn(neuroevo_command("train", *args, "--out", str(run)), log=work / f"killed{attempt}.log") as child:
            at = 2 + settings.rng.randint(0, 6)
            logged = functools.partial(generations_logged, run)
            wait_until(lambda: logged() >= at, 600, child=child, what="generations")  # noqa: B023
            heads = _ray_processes(os.getsid(child.pid), "gcs_server")
            for pid in heads:
                os.kill(pid, signal.SIGKILL)
            start = time.monotonic()
            try:
                status = child.wait(240)
            except Exception:  # noqa: BLE001 - a hang is the failure counted
                status = None
            waited = time.monotonic() - start
            text = child.output()
        lines = [line for line in text.splitlines() if "error" in line.lower() and "--resume" in line]
        problems = []
        if not heads:
            problems.append("no GCS process found to kill")
        if status is None:
            problems.append("the driver hung for 240 s")
        if not lines:
            problems.append(f"no error line with the resume command (exit {status} after {waited:.0f} s)")
        resumed = spawn(neuroevo_command("train", "--resume", str(run), "--quiet"), log=work / f"resume{attempt}.log")
        with resumed:
            if resumed.wait(600) != 0:
                problems.append(f"--resume failed: {resumed.output()[-300:]}")
            else:
                # new workers after the resume: their transport counters (dist/bytes_sent, dist/syncs) differ
                diffs = differences(run_record(work / "straight"), run_record(run), (*WALL_CLOCK_KEYS, "dist/"))
                if diffs:
                    problems.append(f"the resumed run differs: {diffs[:3]}")
        outcome.check(not problems, f"head killed at generation {at}: {'; '.join(problems)}")
        outcome.details[f"attempt {attempt}"] = {"killed_at": at, "exit": status, "seconds_to_exit": round(waited, 1),
                                                 "message": lines[:1] or text.strip().splitlines()[-1:]}
    return outcome

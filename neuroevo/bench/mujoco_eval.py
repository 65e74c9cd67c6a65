"""Part 3 of ``neuroevo bench --env TASK[,TASK...]``: MuJoCo population evaluation against the physics limit.

``--env`` takes MuJoCo -v5 ids (they replace Parts 1 and 2 unless CartPole-v1 is listed too). P members
(``--popsize``, a list: 64 and 1,024 by default) are evaluated, one episode each, with early termination.
The members are small random policies, params ~ N(0, NOISE_STD^2) (linear, and MLP(64, 64) with tanh), so
episode lengths vary as in an early population (Humanoid falls within ~25 steps, HalfCheetah never
terminates). The same members are evaluated by

- ``mujoco``: our backend, ``rollout.evaluate`` on ``--physics-threads`` stepping threads (each ``--device``);
- ``envpool``: EnvPool driven by the same lock-step evaluation on as many threads
  (:mod:`neuroevo.bench.mujoco_envpool`; if installed);
- ``gymnasium``: the same ``evaluate`` through gymnasium's ``SyncVectorEnv`` (one core);
- ``evotorch``: EvoTorch's ``GymNE`` (if installed; :mod:`neuroevo.bench.evotorch_gymne`) evaluating a
  ``SolutionBatch`` of the same members, on ``--physics-threads`` Ray actors (in-process for 1).

The physics limit (:mod:`neuroevo.bench.mujoco_limit`) is measured in the same run over the same episodes:
the physics calls the task needs (``mj_step`` x frame skip, ``mj_rnePostConstraint`` where observations read
contact forces, the resets) timed alone on one core, times the cores; beside it, the measured ratio of two
concurrent single-core loops to twice one. The limit, ``mujoco`` and ``envpool`` are timed alternately,
repeat by repeat, and each reports its best repeat; ``gymnasium`` and ``evotorch`` (minutes per repeat at
1,024 members) run only for populations up to REFERENCE_MAX_POPSIZE, with their own repeats (best of them).
The goal is ``mujoco`` >= TARGET_PHYSICS_PERCENT of the all-cores limit on every row. Each backend seeds its
own initial states the same way but for EvoTorch (unseeded), so mean episode lengths differ slightly.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import time
from collections.abc import Callable
from typing import Any

import torch

from neuroevo.bench import evotorch_gymne, mujoco_envpool
from neuroevo.bench.common import HIDDEN, NOISE_STD, WARMUP_STEPS, Column, Table, field, fmt_count, load_average, pick
from neuroevo.bench.mujoco_limit import PhysicsLimit, concurrency
from neuroevo.envs import VectorEnv, make_env
from neuroevo.envs.mujoco import TASKS as MUJOCO_TASKS
from neuroevo.envs.mujoco.base import default_threads, import_mujoco
from neuroevo.policies import Policy, make_policy, output_dim

POPSIZES = (64, 1024)  # members P, one episode each, for every backend
REFERENCE_MAX_POPSIZE = 64  # gymnasium and EvoTorch rows only up to this population
QUICK = {"popsizes": (4,), "max_steps": 50, "physics_min_s": 0.05, "concurrency_s": 0.05}
PHYSICS_MIN_S = 1.0  # each repeat of the physics limit times at least this much physics
TARGET_PHYSICS_PERCENT = 90.0  # the goal for the mujoco backend, % of the all-cores limit


def task_policy(kind: str, env: VectorEnv) -> Policy:
    """The ``kind`` policy ("linear", or "mlp": MLP(64, 64) with tanh) for ``env``'s spaces."""
    act_dim = output_dim(env.single_action_space)
    if kind == "mlp":
        return make_policy("mlp", env.obs_dim, act_dim, hidden=list(HIDDEN), activation="tanh")
    return make_policy(kind, env.obs_dim, act_dim)


def random_population(policy: Policy, popsize: int, seed: int) -> torch.Tensor:
    """params [P, D] on the CPU, every entry N(0, NOISE_STD^2) drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.empty(popsize, policy.num_params).normal_(0.0, NOISE_STD, generator=generator)


#: one timed repeat of a row: (env steps, seconds, mean episode length)
Repeat = Callable[[], tuple[int, float, float]]


class PhysicsPhase:
    """Wall seconds the mujoco backend spends inside its physics call (``env.physics.step``: the stepping threads'
    phase of each lock-step). The rest of a repeat's wall time is serial work on the calling thread while the other
    stepping threads wait: the policy forward, the task's observation and reward math, the episode bookkeeping."""

    def __init__(self, physics: Any):
        self.seconds = 0.0
        self.shares: list[float] = []  # per repeat: physics seconds / wall seconds
        self._step = physics.step
        physics.step = self._timed

    def _timed(self, *args: Any) -> None:
        start = time.perf_counter()
        try:
            self._step(*args)
        finally:
            self.seconds += time.perf_counter() - start


def evaluation_repeat(
    env_id: str, policy: Policy, params: torch.Tensor, backend: str, device: torch.device, settings: dict[str, Any]
) -> tuple[Repeat, Callable[[], None], int, PhysicsPhase | None]:
    """(one timed ``rollout.evaluate`` of ``params`` [P, D] on ``env_id`` through ``backend``, its closer, its
    workers, the clock of its physics phase for "mujoco"): "mujoco" on ``physics_threads`` threads, "gymnasium"
    or "warp". The env is made and warmed up (a WARMUP_STEPS-step evaluation) here, outside the clock; every repeat
    runs the same episodes."""
    from neuroevo.rollout import evaluate

    workers = settings["physics_threads"] if backend == "mujoco" else 1
    env = make_env(env_id, params.shape[0], device=device, backend=backend, num_threads=workers)
    params = params.to(device)
    evaluate(policy, params, env, seed=settings["seed"], max_steps=WARMUP_STEPS)
    clock = PhysicsPhase(getattr(env, "physics")) if backend == "mujoco" else None  # noqa: B009 (MujocoVectorEnv)

    def repeat() -> tuple[int, float, float]:
        if clock is not None:
            clock.seconds = 0.0
        start = time.perf_counter()
        result = evaluate(policy, params, env, seed=settings["seed"], max_steps=settings["max_steps"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        if clock is not None:
            clock.shares.append(clock.seconds / seconds)
        return result.env_steps, seconds, float(result.episode_lengths.float().mean())

    return repeat, env.close, workers, clock


def _row(backend: str, device: str, policy: Policy, workers: int, popsize: int,
         runs: list[tuple[int, float, float]], clock: PhysicsPhase | None = None) -> dict[str, Any]:
    """A row from its timed repeats: the best repeat's rate (and its physics phase's share of the wall time, for the
    mujoco backend)."""
    best = max(range(len(runs)), key=lambda i: runs[i][0] / runs[i][1])
    steps, seconds, mean_len = runs[best]
    return {
        "backend": backend,
        "device": device,
        "policy": policy.kind,
        "workers": workers,
        "popsize": popsize,
        "env_steps": steps,
        "mean_episode_length": mean_len,
        "seconds": seconds,
        "env_steps_per_s": steps / seconds,
        "repeat_rates": [r[0] / r[1] for r in runs],
        "physics_phase_percent": 100.0 * clock.shares[best] if clock is not None else None,
    }


def bench_task_evaluation(
    env_id: str, policy: Policy, params: torch.Tensor, backend: str, device: torch.device, settings: dict[str, Any]
) -> dict[str, Any]:
    """The row of ``rollout.evaluate`` of ``params`` [P, D] on ``env_id`` through ``backend`` (see
    :func:`evaluation_repeat`), its best of ``settings["repeats"]``."""
    repeat, close, workers, clock = evaluation_repeat(env_id, policy, params, backend, device, settings)
    try:
        runs = [repeat() for _ in range(settings["repeats"])]
    finally:
        close()
    return _row(backend, str(device), policy, workers, params.shape[0], runs, clock)


def settings(args: argparse.Namespace, quick: bool) -> dict[str, Any]:
    """Part 3's flags resolved: explicit flags > --quick > defaults."""
    popsizes = pick(getattr(args, "popsize", None), QUICK["popsizes"], POPSIZES, quick)
    popsizes = (popsizes,) if isinstance(popsizes, int) else tuple(popsizes)
    max_steps = pick(getattr(args, "max_steps", None), QUICK["max_steps"], None, quick)
    threads = getattr(args, "physics_threads", None)
    bad_threads = threads is not None and threads < 1
    if not popsizes or min(popsizes) < 1 or (max_steps is not None and max_steps < 1) or bad_threads:
        raise ValueError("--popsize, --max-steps and --physics-threads must be >= 1")
    return {
        "popsize": popsizes,
        "max_steps": max_steps,
        "physics_threads": threads or default_threads(),
        "cores": default_threads(),
        "physics_min_s": QUICK["physics_min_s"] if quick else PHYSICS_MIN_S,
        "concurrency_s": QUICK["concurrency_s"] if quick else None,
        "evotorch": not getattr(args, "no_evotorch", False),
        "envpool": not getattr(args, "no_envpool", False),
    }


def meta(settings: dict[str, Any]) -> dict[str, Any]:
    """Part 3's entries of the report's meta block: its sizes and the versions compared."""
    import gymnasium

    mujoco = import_mujoco()
    versions: dict[str, str | None] = {}
    for name, wanted in (("evotorch", settings["evotorch"]), ("envpool", settings["envpool"])):
        versions[f"{name}_version"] = None
        if wanted and importlib.util.find_spec(name) is not None:
            versions[f"{name}_version"] = importlib.import_module(name).__version__
    return {
        "env_ids": settings["mujoco_envs"],
        "popsize": list(settings["popsize"]),
        "max_steps": settings["max_steps"],
        "physics_threads": settings["physics_threads"],
        "cores": settings["cores"],
        "mujoco_version": mujoco.__version__,
        "gymnasium_version": gymnasium.__version__,
        **versions,
    }


def _task_rows(
    env_id: str, kind: str, popsize: int, settings: dict[str, Any], devices: list[torch.device],
    references: dict[str, bool], notes: list[str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the physics limit, the rows) of one task, policy and population; every row carries its % of both
    limits. The limit, our backend and EnvPool alternate repeat by repeat."""
    probe = make_env(env_id, 1, device="cpu", backend="mujoco", num_threads=1)
    policy = task_policy(kind, probe)
    probe.close()
    params = random_population(policy, popsize, settings["seed"])
    limit_clock = PhysicsLimit(env_id, policy, params, settings["seed"], settings["max_steps"],
                               settings["physics_min_s"])
    timed: list[tuple[str, str, int, Repeat]] = []
    clocks: list[PhysicsPhase | None] = []
    closers = [limit_clock.close]
    try:
        for device in devices:
            repeat, close, workers, clock = evaluation_repeat(env_id, policy, params, "mujoco", device, settings)
            closers.append(close)
            timed.append(("mujoco", str(device), workers, repeat))
            clocks.append(clock)
        if references["envpool"]:
            threads = settings["physics_threads"]
            repeat = mujoco_envpool.envpool_repeat(env_id, policy, params, threads, settings["seed"],
                                                   settings["max_steps"])
            timed.append(("envpool", "cpu", threads, repeat))
            clocks.append(None)
        limit_rates: list[float] = []
        runs: dict[int, list[tuple[int, float, float]]] = {i: [] for i in range(len(timed))}
        for _ in range(settings["repeats"]):
            limit_rates.append(limit_clock.measure())
            for i, (*_, repeat) in enumerate(timed):
                runs[i].append(repeat())
    finally:
        for close in closers:
            close()
    rows = [_row(b, d, policy, w, popsize, runs[i], clocks[i]) for i, (b, d, w, _) in enumerate(timed)]
    if popsize <= REFERENCE_MAX_POPSIZE:
        rows.append(bench_task_evaluation(env_id, policy, params, "gymnasium", torch.device("cpu"), settings))
        if references["evotorch"]:
            try:
                rows.append(
                    evotorch_gymne.bench_evotorch(
                        env_id, policy, params, settings["physics_threads"], settings["max_steps"], settings["repeats"]
                    )
                )
            except Exception as err:  # a third party's failure (Ray, its env) must not end the bench
                notes.append(f"evotorch {env_id} {kind}: row skipped, {type(err).__name__}: {err}")
    one_core = max(limit_rates)
    limit = {
        "policy": kind,
        "popsize": popsize,
        "frame_skip": MUJOCO_TASKS[env_id].frame_skip,
        "cores": settings["cores"],
        "one_core_env_steps_per_s": one_core,
        "all_cores_env_steps_per_s": one_core * settings["cores"],
        "repeat_rates": limit_rates,
    }
    for row in rows:
        row["percent_of_one_core"] = 100.0 * row["env_steps_per_s"] / limit["one_core_env_steps_per_s"]
        row["percent_of_all_cores"] = 100.0 * row["env_steps_per_s"] / limit["all_cores_env_steps_per_s"]
    return limit, rows


def tasks(settings: dict[str, Any], devices: list[torch.device], notes: list[str]) -> list[dict[str, Any]]:
    """One entry per task: its physics limits per policy and population, the concurrency ratio, its rows."""
    evotorch = any(p <= REFERENCE_MAX_POPSIZE for p in settings["popsize"]) and evotorch_gymne.usable(settings, notes)
    references = {"evotorch": evotorch, "envpool": settings["envpool"] and mujoco_envpool.usable(notes)}
    ray = importlib.import_module("ray") if evotorch and settings["physics_threads"] > 1 else None
    started_ray = ray is not None and not ray.is_initialized()  # EvoTorch starts it once, for every row
    try:
        return [_task(env_id, settings, devices, references, notes) for env_id in settings["mujoco_envs"]]
    finally:
        if started_ray and ray is not None and ray.is_initialized():
            ray.shutdown()


def _task(
    env_id: str, settings: dict[str, Any], devices: list[torch.device], references: dict[str, bool],
    notes: list[str],
) -> dict[str, Any]:
    limits, rows = [], []
    seconds = settings["concurrency_s"]
    scaling = concurrency(env_id, settings["cores"], **({} if seconds is None else {"seconds": seconds}))
    for popsize in settings["popsize"]:
        for kind in settings["policies"]:
            limit, task_rows = _task_rows(env_id, kind, popsize, settings, devices, references, notes)
            limit["load_average"] = (load_average() or (float("nan"),))[0]
            limits.append(limit)
            rows += task_rows
    return {
        "env_id": env_id,
        "frame_skip": MUJOCO_TASKS[env_id].frame_skip,
        "popsize": list(settings["popsize"]),
        "max_steps": settings["max_steps"] or MUJOCO_TASKS[env_id].max_episode_steps,
        "physics_threads": settings["physics_threads"],
        "cores": settings["cores"],
        "concurrency": scaling,
        "limits": limits,
        "rows": rows,
    }


def _table(cores: int) -> Table:
    return Table(
        [
            Column("backend", 10, field("backend"), left=True),
            Column("policy", 7, field("policy"), left=True),
            Column("P", 5, field("popsize")),
            Column("workers", 7, field("workers")),
            Column("mean len", 9, field("mean_episode_length", ".1f")),
            Column("env steps/s", 12, lambda r: fmt_count(r["env_steps_per_s"])),
            Column("% 1-core", 9, lambda r: f"{r['percent_of_one_core']:.0f}%"),
            Column(f"% {cores}-core", 9, lambda r: f"{r['percent_of_all_cores']:.0f}%"),
            Column("physics phase", 13, lambda r: "" if r.get("physics_phase_percent") is None
                   else f"{r['physics_phase_percent']:.0f}%"),
        ],
        indent="    ",
    )


def report(figures: dict[str, Any]) -> list[str]:
    """Part 3's lines of the report: per task, the limits and the table; then the goal."""
    meta = figures["meta"]
    cores = meta["cores"]
    lines = [
        f"Part 3: MuJoCo population evaluation, env steps/s (P = {', '.join(map(str, meta['popsize']))} members, "
        f"one episode each, params N(0, {NOISE_STD}^2); best of {meta['repeats']}, limit / mujoco / envpool "
        "alternating)",
        f"  physics limit = env steps/s of the task's physics alone on one core over the evaluation's own episodes "
        f"(mj_step x frame skip, mj_rnePostConstraint where observed, resets) x {cores} cores; "
        f"mujoco threads, EnvPool threads and EvoTorch actors: {meta['physics_threads']}",
    ]
    for task in figures["mujoco"]:
        scaling = task["concurrency"]
        lines.append(
            f"  {task['env_id']}: frame skip {task['frame_skip']}, episodes up to {task['max_steps']} steps; "
            f"{cores} concurrent 1-core physics loops reach {scaling['ratio']:.2f} of {cores} x one alone"
        )
        for lim in task["limits"]:
            lines.append(
                f"    limit {lim['policy']:<7} P {lim['popsize']:<5} {fmt_count(lim['one_core_env_steps_per_s'])} "
                f"env steps/s on 1 core, {fmt_count(lim['all_cores_env_steps_per_s'])} on {lim['cores']} "
                f"(load average {lim['load_average']:.2f})"
            )
        lines += _table(cores).lines(task["rows"])
    lines.append(
        f"  goal: mujoco >= {TARGET_PHYSICS_PERCENT:.0f}% of the {cores}-core limit on every row; gymnasium and "
        f"EvoTorch rows only up to P = {REFERENCE_MAX_POPSIZE}"
    )
    lines.append(
        "  physics phase: the share of the mujoco row's wall time inside its physics call (the stepping threads at "
        "work); the rest is serial work on one thread (policy forward, observations, rewards, episode bookkeeping)"
    )
    return lines

"""Part 5 of the GPU check: learning on the GPU, and whether what it learns holds on gymnasium's own env.

For each task in turn (Hopper-v5 to 3,000, then HalfCheetah-v5 to 4,000 if time is left): ARS V2-t, linear policy
with observation normalization, on the ``warp`` backend on the device, through the
:class:`~neuroevo.trainer.Trainer` generation by generation until its evaluated center reaches the target or the
part's time (less what scoring needs) is spent. Hopper runs with more directions than its task card (256 members,
the top 32 used, step size 0.03): a GPU evaluates 256 members in about the time of 16, and what costs time there is
the generations, each a sequence of up to 1,000 env steps. On the CPU (``mujoco`` backend, seed 0) these settings
reached 3,000 in 20 generations, 128 members (top 16, step size 0.02) in 38, and the card's settings reach 3,120
in 115 to 200 (docs/results/reproductions.md). Figures: the wall clock to the target from the first generation
(the trainer's construction, which may compile warp's kernels, is ``setup_s``), generations and env steps.

Then the best evaluated policy is scored on 100 episodes on ``warp`` (the device) and on gymnasium's own env, on
the CPU cores in parallel (a pool of processes, each playing a share of the episodes from the same episode seeds
as one process would); fidelity goal: gymnasium's mean return within 5% of warp's.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuroevo.bench.budget import PartContext
from neuroevo.bench.gpu_throughput import warp_part_runs
from neuroevo.checkpoint import atomic_save, policy_record, read_policy
from neuroevo.config import resolve_config
from neuroevo.envs import make_env
from neuroevo.rollout import evaluate
from neuroevo.trainer import Trainer

FIDELITY_PERCENT = 5.0  # gymnasium's mean within this % of warp's
SCORE_EPISODES = 100
SCORE_SEED = 10_000  # episode seeds of the scoring, apart from the training's
SCORE_RESERVE_S = 30.0  # kept from the training for the scoring (warp: seconds; gymnasium: 100 episodes on the cores)
MIN_TRAIN_S = 20.0  # a later task starts only with this much training time left


@dataclass(frozen=True)
class Task:
    """A learning task: the env, its target return, and the settings over its task card."""

    env_id: str
    target: float
    overrides: dict[str, Any] = field(default_factory=dict)


TASKS = (
    Task("Hopper-v5", 3000.0, {"ars": {"popsize": 256, "top_directions": 32, "lr": 0.03}, "run": {"eval_every": 2}}),
    Task("HalfCheetah-v5", 4000.0),
)
# --quick: a couple of generations of tiny episodes on whatever device, a target met at once, a few scoring episodes
QUICK_TASKS = (Task("Hopper-v5", 1.0, {"ars": {"popsize": 4, "top_directions": 2}, "env": {"max_steps": 5},
                                        "run": {"eval_every": 1, "eval_episodes": 2, "generations": 2}}),)
QUICK_SCORE: dict[str, Any] = {"episodes": 2, "max_steps": 5, "reserve_s": 15.0}


def _config(task: Task, device: torch.device) -> Any:
    overrides: dict[str, Any] = {section: dict(values) for section, values in task.overrides.items()}
    overrides.setdefault("env", {})["backend"] = "warp"
    run = overrides.setdefault("run", {})
    run.update(device=str(device), target=task.target, algo="ars")
    run.setdefault("generations", 1_000_000)  # the time share ends the run, or the target
    return resolve_config(task.env_id, overrides)


def train(task: Task, device: torch.device, run_dir: Path, deadline: float) -> dict[str, Any]:
    """Train ``task`` on warp until its target or ``deadline`` (``time.perf_counter()``); its best evaluated
    policy is ``run_dir/best_policy.pt``. Returns the figures of the training."""
    shutil.rmtree(run_dir, ignore_errors=True)  # a retried part starts afresh
    start = time.perf_counter()
    trainer = Trainer(_config(task, device), out=run_dir)
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    to_target, curve = None, []
    try:
        while not trainer.done() and time.perf_counter() < deadline:
            row = trainer.step()
            if "eval/return_mean" in row:
                curve.append({"generation": row["generation"], "env_steps": row["env_steps"],
                              "wall_s": time.perf_counter() - start, "eval_return": row["eval/return_mean"]})
            if trainer.solved and to_target is None:
                to_target = time.perf_counter() - start
    finally:
        trainer.close()
    train_s = time.perf_counter() - start
    best = run_dir / "best_policy.pt"
    if not best.exists():  # never evaluated: score the center as it is
        atomic_save(policy_record(trainer.policy, trainer.optimizer.center, trainer.eval_env.single_action_space,
                                  trainer.normalizer, task.env_id, generation=trainer.generation,
                                  env_steps=trainer.env_steps, eval_return=math.nan), best)
    cfg = trainer.config
    return {
        "env_id": task.env_id, "target": task.target, "reached": trainer.solved, "seconds_to_target": to_target,
        "setup_s": setup_s, "train_s": train_s, "generations": trainer.generation, "env_steps": trainer.env_steps,
        "best_eval_return": trainer.best_eval_return, "algo": cfg.run.algo, "popsize": cfg.algo_config.popsize,
        "settings": {"ars": dataclasses.asdict(cfg.algo_config), "eval_every": cfg.run.eval_every,
                     "eval_episodes": cfg.run.eval_episodes, "max_steps": cfg.env.max_steps},
        "curve": curve,
    }


def score_policy(path: str, env_id: str, episodes: int, backend: str, device: str, seed: int,
                 max_steps: int | None = None, threads: int | None = None) -> list[float]:
    """Returns of ``episodes`` episodes of the policy file ``path`` on ``backend``, episode j from seed
    ``seed + j`` (``neuroevo eval``'s evaluation, with an episode cap). ``threads``: torch's CPU threads (the
    scoring pool's processes take one each)."""
    if threads is not None:
        torch.set_num_threads(threads)
    policy, params, _, normalizer, _ = read_policy(path)
    env = make_env(env_id, episodes, device=device, backend=backend, max_episode_steps=max_steps)
    try:
        if normalizer is not None:
            normalizer.to(env.device)
        result = evaluate(policy, params[None].to(env.device), env, episodes, normalizer=normalizer, seed=seed)
    finally:
        env.close()
    return result.episode_returns[0].cpu().tolist()


def score_on_cores(path: Path, env_id: str, episodes: int, seed: int, max_steps: int | None,
                   workers: int) -> list[float]:
    """:func:`score_policy` on gymnasium, the episodes split over ``workers`` fresh processes (the same seeds)."""
    workers = max(1, min(workers, episodes))
    bounds = [round(i * episodes / workers) for i in range(workers + 1)]
    context = multiprocessing.get_context("spawn")  # never fork a process that holds CUDA and warp
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = [pool.submit(score_policy, str(path), env_id, hi - lo, "gymnasium", "cpu", seed + lo, max_steps, 1)
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
        return [value for job in jobs for value in job.result()]


def score(ctx: PartContext, task: Task, path: Path, quick: bool) -> dict[str, Any]:
    """The policy at ``path`` on warp (the device) and on gymnasium (the cores), and the gap between them."""
    episodes = QUICK_SCORE["episodes"] if quick else SCORE_EPISODES
    max_steps = QUICK_SCORE["max_steps"] if quick else None
    start = time.perf_counter()
    on_warp = score_policy(str(path), task.env_id, episodes, "warp", str(ctx.device), SCORE_SEED, max_steps)
    warp_s = time.perf_counter() - start
    workers = len(os.sched_getaffinity(0))
    on_gym = score_on_cores(path, task.env_id, episodes, SCORE_SEED, max_steps, workers)
    warp_mean, gym_mean = _mean(on_warp), _mean(on_gym)
    gap = 100.0 * abs(gym_mean - warp_mean) / max(abs(warp_mean), 1e-9)
    return {"episodes": episodes, "max_steps": max_steps, "warp_mean": warp_mean, "warp_std": _std(on_warp),
            "gymnasium_mean": gym_mean, "gymnasium_std": _std(on_gym), "gap_percent": gap,
            "within_goal": gap <= FIDELITY_PERCENT, "warp_s": warp_s,
            "gymnasium_s": time.perf_counter() - start - warp_s, "gymnasium_workers": min(workers, episodes)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _std(values: list[float]) -> float:
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def run(ctx: PartContext) -> dict[str, Any]:
    """Part 5's figures: one ``tasks`` row per task trained (its training figures and its ``score``)."""
    if not warp_part_runs(ctx, "a check that the part runs (tiny episodes)"):
        return ctx.figures
    tasks = QUICK_TASKS if ctx.quick else TASKS
    reserve = QUICK_SCORE["reserve_s"] if ctx.quick else SCORE_RESERVE_S
    out = ctx.out if ctx.out is not None else Path("runs")
    for i, task in enumerate(tasks):
        if i > 0 and not ctx.fits(reserve + MIN_TRAIN_S):
            ctx.note(f"{task.env_id}: skipped for time ({max(ctx.left(), 0):.0f} s left of the part's share)")
            continue
        run_dir = out / "learning" / task.env_id
        row = ctx.attempt(f"train {task.env_id}", train, task, ctx.device, run_dir, ctx.deadline - reserve)
        if row is None:
            continue
        row["score"] = ctx.attempt(f"score {task.env_id}", score, ctx, task, run_dir / "best_policy.pt", ctx.quick)
        ctx.record("tasks", row)
    return ctx.figures


def summary(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task: seconds to the target, and the gymnasium/warp gap against 5%."""
    out = []
    for row in figures.get("tasks", []):
        reached = row["reached"]
        value = (f"{row['seconds_to_target']:.0f} s, {row['generations']} gens" if reached else
                 f"not reached in {row['train_s']:.0f} s (best {row['best_eval_return']:.0f})")
        out.append({"figure": f"ARS on warp, {row['env_id']} to {row['target']:,.0f}: wall clock", "value": value,
                    "target": "reached", "met": reached})
        score = row.get("score")
        if score:
            out.append({"figure": f"{row['env_id']} policy on gymnasium vs warp ({score['episodes']} episodes)",
                        "value": f"{score['gap_percent']:.1f}% ({score['gymnasium_mean']:.0f} vs "
                                 f"{score['warp_mean']:.0f})",
                        "target": f"<= {FIDELITY_PERCENT:.0f}%", "met": score["within_goal"]})
    return out

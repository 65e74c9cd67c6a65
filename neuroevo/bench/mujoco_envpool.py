"""Part 3's ``envpool`` row: EnvPool (C++ threads, its own MuJoCo build) driven by the same lock-step
population evaluation as our backends.

The members ``params`` [P, D] play one episode each in a pool of P envs on ``threads`` threads
(``envpool.make_gymnasium(env_id, num_envs=P, batch_size=P, num_threads=threads, env_seed=...)``): env i's
episode is seeded by member i's evaluation seed (``rollout.episode_seeds``, reduced to EnvPool's int32),
every step runs the same policy forward over all P members (as ``rollout.evaluate`` does), and only the
running envs are stepped (``send(actions, env_id)``, then ``recv()``); a finished env is never stepped again,
so EnvPool's autoreset never runs. Env steps are the steps of running episodes, as for every row. A fresh pool
per timed call (made outside the clock, as our env is) replays the same episodes. EnvPool is optional
(``pip install envpool``): without it the row is skipped with a note.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from neuroevo.bench.common import WARMUP_STEPS
from neuroevo.policies import Policy
from neuroevo.policies.head import apply_head

INT32 = 2**31 - 1


def usable(notes: list[str]) -> bool:
    """Whether EnvPool is installed (else a note)."""
    if importlib.util.find_spec("envpool") is None:
        notes.append("envpool: row skipped, not installed (pip install envpool)")
        return False
    return True


def make_pool(env_id: str, seeds: torch.Tensor, threads: int, max_steps: int | None) -> Any:
    """EnvPool's gymnasium pool of ``len(seeds)`` ``env_id`` envs, env i seeded by ``seeds[i]``, stepped in
    sync mode (batch size = pool size) on ``threads`` threads."""
    import envpool

    kwargs: dict[str, Any] = {} if max_steps is None else {"max_episode_steps": int(max_steps)}
    return envpool.make_gymnasium(
        env_id,
        num_envs=len(seeds),
        batch_size=len(seeds),
        num_threads=threads,
        env_seed=[int(s) % INT32 for s in seeds.tolist()],
        **kwargs,
    )


@torch.no_grad()
def evaluate_envpool(policy: Policy, params: torch.Tensor, pool: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One episode of each member of ``params`` [P, D] in ``pool`` (P envs), in lock-step: (returns [P],
    lengths [P])."""
    popsize = params.shape[0]
    space = pool.action_space
    low = torch.as_tensor(space.low, dtype=params.dtype)
    high = torch.as_tensor(space.high, dtype=params.dtype)
    obs_all = np.zeros((popsize, *pool.observation_space.shape), dtype=np.float32)
    obs, info = pool.reset()
    obs_all[info["env_id"]] = obs
    running = np.ones(popsize, dtype=bool)
    returns = np.zeros(popsize)
    lengths = np.zeros(popsize, dtype=np.int64)
    while running.any():
        raw = policy(params, torch.from_numpy(obs_all)[:, None])  # every member, as rollout.evaluate does
        actions = apply_head(raw, None, low, high)[:, 0].numpy()
        ids = np.flatnonzero(running).astype(np.int32)
        pool.send(actions[ids], ids)
        obs, reward, terminated, truncated, info = pool.recv()
        done_ids = info["env_id"]
        obs_all[done_ids] = obs
        returns[done_ids] += reward
        lengths[done_ids] += 1
        running[done_ids[terminated | truncated]] = False
    return torch.as_tensor(returns), torch.as_tensor(lengths)


def envpool_repeat(
    env_id: str, policy: Policy, params: torch.Tensor, threads: int, seed: int, max_steps: int | None
) -> Callable[[], tuple[int, float, float]]:
    """One timed :func:`evaluate_envpool` of ``params`` [P, D] on ``threads`` EnvPool threads per call:
    (env steps, seconds, mean episode length). A fresh pool each call, made outside the clock, replays the
    same episodes; a short warm-up pool runs here first."""
    from neuroevo.rollout import episode_seeds

    seeds = episode_seeds(seed, params.shape[0], 1).reshape(-1)
    warmup = make_pool(env_id, seeds, threads, WARMUP_STEPS)
    evaluate_envpool(policy, params, warmup)
    warmup.close()

    def repeat() -> tuple[int, float, float]:
        pool = make_pool(env_id, seeds, threads, max_steps)
        try:
            start = time.perf_counter()
            _, lengths = evaluate_envpool(policy, params, pool)
            return int(lengths.sum()), time.perf_counter() - start, float(lengths.float().mean())
        finally:
            pool.close()

    return repeat

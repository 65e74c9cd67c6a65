"""Evaluating a saved policy on any backend (gymnasium's own env is the reference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from neuroevo.checkpoint import read_policy
from neuroevo.envs import make_env
from neuroevo.rollout import evaluate


def evaluate_checkpoint(
    path: str | Path,
    env_id: str | None = None,
    episodes: int = 100,
    *,
    backend: str = "gymnasium",
    device=None,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean and std of the return of the policy saved at ``path`` over ``episodes`` episodes.

    ``env_id`` defaults to the env it was trained on; the observation and action spaces must match
    the policy's. Returns ``{"env_id", "backend", "episodes", "mean", "std", "returns"}``.
    """
    policy, params, action_space, normalizer, record = read_policy(path)
    env_id = env_id or record["env_id"]
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    env = make_env(env_id, episodes, device=device or "cpu", backend=backend)
    try:
        if env.obs_dim != policy.obs_dim:
            raise ValueError(
                f"{path}: the policy was trained on {record['env_id']} with {policy.obs_dim}-dim observations; "
                f"{env_id} gives {env.obs_dim}"
            )
        if not _same_action_space(env.single_action_space, action_space):
            raise ValueError(
                f"{path}: the policy acts in {action_space} ({record['env_id']}); {env_id} expects "
                f"{env.single_action_space}"
            )
        if normalizer is not None:
            normalizer.to(env.device)
        result = evaluate(
            policy, params[None].to(env.device), env, episodes, normalizer=normalizer, seed=seed
        )
    finally:
        env.close()
    returns = result.episode_returns[0].cpu()
    return {
        "env_id": env_id,
        "backend": backend,
        "episodes": episodes,
        "mean": float(returns.mean()),
        "std": float(returns.std(unbiased=False)),
        "returns": returns.tolist(),
    }


def _same_action_space(a, b) -> bool:
    """Equal kind, size and bounds (a Box's dtype may differ: actions are cast at the env boundary)."""
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n and a.start == b.start
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return a.shape == b.shape and np.allclose(a.low, b.low) and np.allclose(a.high, b.high)
    return False

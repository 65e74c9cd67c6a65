"""Playing back a saved policy: its mean return on any backend (gymnasium's own env is the reference) and a
video of an episode. ("Evaluation" in neuroevo means the population's, by an :mod:`~neuroevo.evaluator`.)"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from neuroevo.checkpoint import read_policy
from neuroevo.envs import make_env
from neuroevo.envs.gym_backend import make_gymnasium_env
from neuroevo.policies import DeployedPolicy
from neuroevo.rollout import evaluate


def evaluate_checkpoint(
    path: str | Path,
    env_id: str | None = None,
    episodes: int = 100,
    *,
    backend: str = "gymnasium",
    device=None,
    seed: int = 0,
    module: nn.Module | None = None,
) -> dict[str, Any]:
    """Mean and std of the return of the policy saved at ``path`` over ``episodes`` episodes, episode i from seed
    ``seed + i``.

    On the ``gymnasium`` backend (the reference) the episodes are played the way a deployed policy runs: one
    gymnasium env, the deployed module (:func:`~neuroevo.checkpoint.load_policy`) called on each observation
    as it comes (:func:`play_episode`), so a plain gymnasium loop over the same seeds gives the same returns
    exactly. (A batched forward rounds differently from a one-row forward, in the last bits, and an episode
    of a sensitive task, such as Pendulum's swing-up, can amplify that into a different return.) The other
    backends play all episodes in lock-step, batched, as training does.

    ``env_id`` defaults to the env it was trained on (a user's env with the entry point, constructor arguments
    and episode cap it was trained with); the observation and action spaces must match the policy's.
    ``module``: the architecture of a policy trained on an ``nn.Module`` passed as an object (one named by
    import path is rebuilt from it). Returns ``{"env_id", "backend", "episodes", "mean", "std", "returns"}``.
    """
    policy, params, action_space, normalizer, record = read_policy(path, module)
    env_id, make_args = saved_env(record, env_id)
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if backend == "gymnasium":
        deployed = DeployedPolicy.build(policy, params, action_space, normalizer)
        one = make_gymnasium_env(env_id, **make_args)
        try:
            _check_spaces(path, record, env_id, policy.obs_dim, action_space, one.observation_space,
                          one.action_space)
            played = [play_episode(deployed, one, seed + i) for i in range(episodes)]
            returns = torch.tensor(played, dtype=torch.float64)
        finally:
            one.close()
    else:
        env = make_env(env_id, episodes, device=device or "cpu", backend=backend, **make_args)
        try:
            _check_spaces(path, record, env_id, policy.obs_dim, action_space, env.single_observation_space,
                          env.single_action_space)
            if normalizer is not None:
                normalizer.to(env.device)
            result = evaluate(policy, params[None].to(env.device), env, episodes, normalizer=normalizer, seed=seed)
        finally:
            env.close()
        returns = result.episode_returns[0].cpu().double()
    return {
        "env_id": env_id,
        "backend": backend,
        "episodes": episodes,
        "mean": float(returns.mean()),
        "std": float(returns.std(unbiased=False)),
        "returns": returns.tolist(),
    }


def play_episode(module: nn.Module, env: gym.Env, seed: int, frames: list[Any] | None = None) -> float:
    """One episode of ``env`` from ``reset(seed=seed)``, ``module`` (a deployed policy) choosing each action
    from the observation as gymnasium returns it: the loop to run a deployed policy with. Returns the sum
    of the rewards; with ``frames``, appends ``env.render()`` after the reset and after every step."""
    obs, _ = env.reset(seed=int(seed))
    if frames is not None:
        frames.append(env.render())
    total, done = 0.0, False
    while not done:
        with torch.no_grad():
            action = module(torch.as_tensor(obs).reshape(-1)).cpu().numpy()  # policies read flat observations
        obs, reward, terminated, truncated, _ = env.step(action)
        if frames is not None:
            frames.append(env.render())
        total += float(reward)
        done = bool(terminated or truncated)
    return total


def _check_spaces(path, record, env_id, obs_dim, action_space, obs_space, env_action_space) -> None:
    if math.prod(obs_space.shape or ()) != obs_dim:
        raise ValueError(
            f"{path}: the policy was trained on {record['env_id']} with {obs_dim}-dim observations; "
            f"{env_id} gives {math.prod(obs_space.shape or ())}"
        )
    if not _same_action_space(env_action_space, action_space):
        raise ValueError(
            f"{path}: the policy acts in {action_space} ({record['env_id']}); {env_id} expects {env_action_space}"
        )


def saved_env(record: dict[str, Any], env_id: str | None) -> tuple[str, dict[str, Any]]:
    """(env id, make_env's entry_point / kwargs / max_episode_steps): the env the policy was trained on, with
    its episode cap, unless ``env_id`` names another."""
    if env_id is not None and env_id != record["env_id"]:
        return env_id, {}
    saved = record.get("env") or {}
    args = {"entry_point": saved.get("entry_point"), **(saved.get("kwargs") or {})}
    if saved.get("max_steps") is not None:
        args["max_episode_steps"] = saved["max_steps"]
    return record["env_id"], args


def _same_action_space(a, b) -> bool:
    """Equal kind, size and bounds (a Box's dtype may differ: actions are cast at the env boundary)."""
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n and a.start == b.start
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return a.shape == b.shape and np.allclose(a.low, b.low) and np.allclose(a.high, b.high)
    return False


def record_video(
    path: str | Path,
    out: str | Path,
    env_id: str | None = None,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    fps: int | None = None,
) -> dict[str, Any]:
    """Render one episode of the policy saved at ``path`` on gymnasium's env to a video file.

    The deployed module (:func:`load_policy`) drives ``gymnasium.make(env_id, render_mode="rgb_array")``;
    frames are written with imageio (``.mp4`` through imageio-ffmpeg, ``.gif`` also works). Headless
    MuJoCo rendering needs ``MUJOCO_GL=egl`` (a GPU) or ``MUJOCO_GL=osmesa`` (CPU; Debian's libosmesa6)
    set before mujoco is imported. Returns ``{"path", "frames", "return"}``.
    """
    import imageio

    policy, params, action_space, normalizer, record = read_policy(path)
    module = DeployedPolicy.build(policy, params, action_space, normalizer)
    env_id, make_args = saved_env(record, env_id)
    if max_steps:
        make_args["max_episode_steps"] = max_steps
    env = make_gymnasium_env(env_id, render_mode="rgb_array", **make_args)
    try:
        frames: list[Any] = []  # rgb_array: one [H, W, 3] uint8 array per step
        total = play_episode(module, env, seed, frames)
        fps = fps or int(env.metadata.get("render_fps", 30))
    finally:
        env.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(out, frames, fps=fps)
    return {"path": str(out), "frames": len(frames), "return": total}

"""Shared check for the MuJoCo tasks: step gymnasium's -v5 env and ours side by side."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.mujoco import MUJOCO_ENVS


def gymnasium_rollouts(env_id: str, seeds, steps: int, action_fn):
    """Per seed: the start (qpos, qvel) and, per step, (action, obs, reward, terminated, truncated, info)."""
    runs = []
    for seed in seeds:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=int(seed))
        data = env.unwrapped.data
        start = (data.qpos.copy(), data.qvel.copy(), obs)
        rng = np.random.default_rng(int(seed))
        trace = []
        for t in range(steps):
            action = action_fn(rng, env.action_space, t)
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((action, obs, reward, terminated, truncated, info))
            if terminated or truncated:
                break
        env.close()
        runs.append((start, trace))
    return runs


def random_actions(rng, space, t):
    return rng.uniform(space.low, space.high).astype(np.float32)


def assert_matches_gymnasium(env_id: str, seeds=(0, 1, 2), steps: int = 1000, action_fn=random_actions,
                             atol: float = 1e-7, terms: tuple[str, ...] = ()):
    """Our batched env (float64, one slot per seed) against gymnasium's env from the same start states
    under the same actions: observations, rewards, termination, truncation and the named reward terms
    (gymnasium's ``info`` keys, ours in ``info["reward_terms"]``) at every step."""
    runs = gymnasium_rollouts(env_id, seeds, steps, action_fn)
    env = MUJOCO_ENVS[env_id](len(seeds), dtype=torch.float64, num_threads=2)
    qpos = np.stack([start[0] for start, _ in runs])
    qvel = np.stack([start[1] for start, _ in runs])
    obs, _ = env.reset(options={"state": {"qpos": qpos, "qvel": qvel}})
    np.testing.assert_allclose(obs.numpy(), np.stack([start[2] for start, _ in runs]), atol=atol, rtol=0)
    done = np.zeros(len(seeds), dtype=bool)
    for t in range(max(len(trace) for _, trace in runs)):
        actions = np.stack([trace[min(t, len(trace) - 1)][0] for _, trace in runs])
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        for k, (_, trace) in enumerate(runs):
            if done[k]:
                continue
            _, g_obs, g_rew, g_term, g_trunc, g_info = trace[t]
            where = f"{env_id} seed {seeds[k]} step {t}"
            np.testing.assert_allclose(obs[k].numpy(), g_obs, atol=atol, rtol=0, err_msg=where)
            np.testing.assert_allclose(float(reward[k]), g_rew, atol=atol, rtol=0, err_msg=where)
            assert bool(terminated[k]) == g_term and bool(truncated[k]) == g_trunc, where
            for term in terms:
                np.testing.assert_allclose(info["reward_terms"][term][k], g_info[term], atol=atol, rtol=0,
                                           err_msg=f"{where} {term}")
            done[k] = g_term or g_trunc
    assert done.all() or steps < 1000
    return runs

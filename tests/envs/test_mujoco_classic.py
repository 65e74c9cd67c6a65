"""The batched classic MuJoCo tasks (neuroevo/envs/mujoco/classic.py) against gymnasium's -v5 envs."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from mujoco_parity import assert_matches_gymnasium

from neuroevo.envs.base import seeds_tensor
from neuroevo.envs.mujoco import MUJOCO_ENVS, MujocoVectorEnv
from neuroevo.envs.mujoco.classic import TASKS, InvertedDoublePendulum, InvertedPendulum, Reacher
from neuroevo.seeding import hash_uniform

TERMS = {
    "InvertedPendulum-v5": ("reward_survive",),
    "InvertedDoublePendulum-v5": ("reward_survive", "distance_penalty", "velocity_penalty"),
    "Reacher-v5": ("reward_dist", "reward_ctrl"),
}

# gymnasium's Reacher sums the squared float32 action in float32 (reward_ctrl off by ~1e-7), ours in float64
ATOL = {"Reacher-v5": 1e-6}


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_matches_gymnasium_over_whole_episodes(env_id):
    runs = assert_matches_gymnasium(env_id, seeds=(0, 1, 2), terms=TERMS[env_id], atol=ATOL.get(env_id, 1e-7))
    g_keys = {key for _, trace in runs for *_, info in trace for key in info}
    assert g_keys == set(TERMS[env_id])  # every reward term gymnasium reports is compared
    env = MUJOCO_ENVS[env_id](2, dtype=torch.float64, num_threads=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step(torch.zeros(2, *env.single_action_space.shape))
    assert set(info["reward_terms"]) == g_keys
    assert all(np.shape(v) == (2,) for v in info["reward_terms"].values())
    if env_id == "Reacher-v5":
        assert all(len(trace) == 50 and trace[-1][4] and not trace[-1][3] for _, trace in runs)


def gentle_actions(rng, space, t):
    """Small random forces: the pendulums stay up for longer episodes (about 20-35 steps, not 5-8)."""
    return (0.05 * rng.uniform(space.low, space.high)).astype(np.float32)


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "InvertedDoublePendulum-v5"])
def test_pendulums_match_gymnasium_under_gentle_actions(env_id):
    runs = assert_matches_gymnasium(env_id, seeds=(0, 1, 2), action_fn=gentle_actions, terms=TERMS[env_id])
    assert all(trace[-1][3] and not trace[-1][4] for _, trace in runs)  # each episode ended by termination


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_defaults_are_gymnasium_v5(env_id):
    cls = TASKS[env_id]
    gym_env = gym.make(env_id)
    assert cls.spec_id == env_id
    assert os.path.basename(gym_env.unwrapped.fullpath) == cls.xml
    assert cls.max_episode_steps == gym_env.spec.max_episode_steps
    assert cls.frame_skip == gym_env.unwrapped.frame_skip
    assert cls.obs_dim == gym_env.observation_space.shape[0]
    env = MUJOCO_ENVS[env_id](1, num_threads=1)
    assert env.task.dt == gym_env.unwrapped.dt
    assert env.model.nq == gym_env.unwrapped.model.nq and env.model.nu == gym_env.unwrapped.model.nu
    np.testing.assert_array_equal(env.single_action_space.low, gym_env.action_space.low)
    np.testing.assert_array_equal(env.single_action_space.high, gym_env.action_space.high)
    gym_env.close()


def test_reacher_truncates_at_step_50():
    env = MUJOCO_ENVS["Reacher-v5"](3, dtype=torch.float64, num_threads=1)
    env.reset(seed=5)
    for t in range(1, 51):
        _, reward, terminated, truncated, _ = env.step(torch.rand(3, 2) * 2 - 1)
        assert not terminated.any()
        assert bool(truncated.all()) == (t == 50) and bool(truncated.any()) == (t == 50)
        assert torch.isfinite(reward).all()


def test_reacher_goals_lie_in_the_disc_and_follow_the_seed():
    env = MUJOCO_ENVS["Reacher-v5"](64, dtype=torch.float64, num_threads=2)
    obs, _ = env.reset(seed=3)
    goal = env.now["qpos"][:, 2:].copy()
    np.testing.assert_array_equal(obs[:, 4:6].numpy(), goal)
    assert (np.linalg.norm(goal, axis=1) < 0.2).all()
    assert np.abs(goal).max() > 0.15  # spread over the disc, not shrunk
    env.reset()
    assert not np.allclose(env.now["qpos"][:, 2:], goal)  # a new episode, a new goal
    env.reset(seed=3)
    np.testing.assert_array_equal(env.now["qpos"][:, 2:], goal)
    other = MUJOCO_ENVS["Reacher-v5"](64, dtype=torch.float64, num_threads=1)
    other.reset(seed=3)
    np.testing.assert_array_equal(other.now["qpos"][:, 2:], goal)
    np.testing.assert_array_equal(other.now["qvel"][:, 2:], 0.0)


def test_reacher_goal_sampling_is_rejection_and_falls_back_inside_the_disc():
    k = Reacher.goal_candidates
    u = np.full((3, 2 * k), 0.99)  # every candidate (0.196, 0.196) is rejected
    u[1, 4:6] = (0.75, 0.5)  # third candidate (0.1, 0) accepted
    u[1, 6:8] = (0.5, 0.5)  # later accepted candidates are ignored
    u[2, :2] = (0.5, 0.25)  # first candidate (0, -0.1) accepted
    goal = Reacher.sample_goal(u)
    np.testing.assert_allclose(goal, [[0.098, 0.098], [0.1, 0.0], [0.0, -0.1]], atol=1e-12)
    corners = Reacher.sample_goal(np.zeros((1, 2 * k)))  # all at the corner (-0.2, -0.2)
    assert np.linalg.norm(corners) < 0.2


def start_states(cls, n: int, seed: int = 0):
    """(task of an env with 4 slots, qpos [n, nq], qvel [n, nv]): ``initial_state`` on n envs' reset uniforms, and a
    check that ``reset`` applies it."""
    env = MujocoVectorEnv(cls, 4, dtype=torch.float64, num_threads=1)
    env.reset(seed=seed)
    u = hash_uniform(
        seeds_tensor(seed, n), torch.zeros(n, dtype=torch.int64), cls.num_reset_uniforms, dtype=torch.float64
    ).numpy()
    qpos, qvel = env.task.initial_state(u)
    np.testing.assert_array_equal(env.now["qpos"], qpos[:4])
    np.testing.assert_array_equal(env.now["qvel"], qvel[:4])
    return env.task, qpos, qvel


def test_pendulum_start_states_within_noise_bounds():
    task, qpos, qvel = start_states(InvertedPendulum, 20000)
    for x in (qpos - task.init_qpos, qvel - task.init_qvel):  # U(-0.01, 0.01)
        assert np.abs(x).max() < 0.01 and np.abs(x).max() > 0.0099
        np.testing.assert_allclose(x.std(axis=0), 0.02 / np.sqrt(12), rtol=0.03)
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=2e-4)

    task, qpos, qvel = start_states(InvertedDoublePendulum, 20000)
    dq, dv = qpos - task.init_qpos, qvel - task.init_qvel
    assert np.abs(dq).max() < 0.1 and np.abs(dq).max() > 0.099  # U(-0.1, 0.1)
    np.testing.assert_allclose(dv.std(axis=0), 0.1, rtol=0.03)  # 0.1 * N(0, 1)
    np.testing.assert_allclose(dv.mean(axis=0), 0.0, atol=0.003)
    assert np.abs(dv).max() > 0.3  # normal tails, not a bounded distribution


def test_reacher_start_states_within_noise_bounds():
    task, qpos, qvel = start_states(Reacher, 20000, seed=1)
    dq, dv = qpos - task.init_qpos, qvel - task.init_qvel
    assert np.abs(dq[:, :2]).max() < 0.1 and np.abs(dq[:, :2]).max() > 0.099
    assert np.abs(dv[:, :2]).max() < 0.005 and np.abs(dv[:, :2]).max() > 0.00499
    np.testing.assert_array_equal(qvel[:, 2:], 0.0)
    goal = qpos[:, 2:]
    assert (np.linalg.norm(goal, axis=1) < 0.2).all()
    # uniform over the disc: the radius r has P(r < a) = (a / 0.2)^2
    np.testing.assert_allclose(np.mean(np.linalg.norm(goal, axis=1) < 0.1), 0.25, atol=0.015)


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_seeded_episodes_repeat(env_id):
    def episode():
        env = MUJOCO_ENVS[env_id](4, dtype=torch.float64, num_threads=2)
        obs, _ = env.reset(seed=11)
        out = [obs]
        gen = torch.Generator().manual_seed(0)
        for _ in range(20):
            low, high = (torch.as_tensor(b) for b in (env.single_action_space.low, env.single_action_space.high))
            obs, reward, *_ = env.step(low + (high - low) * torch.rand(4, *low.shape, generator=gen))
            out += [obs, reward]
        env.close()
        return out

    for a, b in zip(episode(), episode(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

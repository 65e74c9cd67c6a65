"""The batched Ant-v5 and Humanoid-v5 against gymnasium's own, stepped side by side."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from mujoco_parity import assert_matches_gymnasium  # tests/envs/mujoco_parity.py: pytest puts tests/envs on sys.path

from neuroevo.envs.mujoco import MUJOCO_ENVS
from neuroevo.envs.mujoco.spatial import TASKS

SEEDS = (0, 1, 2)
COMMON_TERMS = (
    "x_position",
    "y_position",
    "distance_from_origin",
    "x_velocity",
    "y_velocity",
    "reward_forward",
    "reward_ctrl",
    "reward_contact",
    "reward_survive",
)
TERMS = {"Ant-v5": COMMON_TERMS, "Humanoid-v5": (*COMMON_TERMS, "tendon_length", "tendon_velocity")}


def test_spaces_and_constants_match_gymnasium():
    for env_id in TASKS:
        ref = gym.make(env_id)
        env = MUJOCO_ENVS[env_id](2, num_threads=1)
        assert env.single_observation_space.shape == ref.observation_space.shape == (env.obs_dim,)
        assert env.single_action_space == ref.action_space
        assert env.max_episode_steps == ref.spec.max_episode_steps
        assert env.task.frame_skip == ref.unwrapped.frame_skip and env.task.dt == ref.unwrapped.dt
        ref.reset(seed=0)
        _, _, _, _, info = ref.step(ref.action_space.sample())
        env.reset(seed=0)
        _, _, _, _, ours = env.step(torch.zeros(2, *env.single_action_space.shape))
        assert set(ours["reward_terms"]) == set(info) == set(TERMS[env_id])
        env.close()
        ref.close()


def test_ant_matches_gymnasium_to_the_time_limit():
    # under these seeds' random actions two ants hop above the healthy z range (terminated at steps 45
    # and 153) and one runs into the 1000-step time limit (truncated), so both endings are compared
    runs = assert_matches_gymnasium("Ant-v5", SEEDS, steps=1000, terms=TERMS["Ant-v5"])
    assert all(trace[-1][3] or trace[-1][4] for _, trace in runs)


def test_humanoid_matches_gymnasium_whole_episodes():
    runs = assert_matches_gymnasium("Humanoid-v5", SEEDS, steps=1000, terms=TERMS["Humanoid-v5"])
    assert all(trace[-1][3] for _, trace in runs)  # every episode ended by falling, not by the time limit


@pytest.mark.parametrize(("env_id", "z"), [("Ant-v5", 1.3), ("Humanoid-v5", 0.6), ("Humanoid-v5", 2.5)])
def test_unhealthy_step(env_id, z):
    """One step from a state outside the healthy z range: terminated, no survival reward, as gymnasium.
    (Ant's lower bound 0.2 is below its torso's radius: the floor pushes it back up within a step.)"""
    ref = gym.make(env_id).unwrapped
    ref.reset(seed=0)
    qpos, qvel = ref.init_qpos.copy(), ref.init_qvel.copy()
    qpos[2] = z
    ref.set_state(qpos, qvel)
    action = np.full(ref.action_space.shape, 0.3, dtype=np.float32)
    g_obs, g_rew, g_term, _, g_info = ref.step(action)
    env = MUJOCO_ENVS[env_id](1, dtype=torch.float64, num_threads=1)
    env.reset(options={"state": {"qpos": qpos[None], "qvel": qvel[None]}})
    obs, reward, terminated, _, info = env.step(torch.as_tensor(action[None]))
    assert g_term and bool(terminated[0])
    np.testing.assert_allclose(obs[0].numpy(), g_obs, atol=1e-7, rtol=0)
    np.testing.assert_allclose(float(reward[0]), g_rew, atol=1e-7, rtol=0)
    assert info["reward_terms"]["reward_survive"][0] == g_info["reward_survive"] == 0
    ref.close()


@pytest.mark.parametrize("env_id", list(TASKS))
def test_reset_seed_is_deterministic(env_id):
    env = MUJOCO_ENVS[env_id](3, dtype=torch.float64, num_threads=1)
    first, _ = env.reset(seed=7)
    state = env.now["qpos"].copy(), env.now["qvel"].copy()
    again, _ = env.reset(seed=7)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    np.testing.assert_array_equal(env.now["qpos"], state[0])
    np.testing.assert_array_equal(env.now["qvel"], state[1])
    assert len({tuple(row) for row in state[0]}) == 3  # each env its own start
    later, _ = env.reset()  # a new episode draws new noise
    assert not torch.equal(later, first)
    other, _ = env.reset(seed=8)
    assert not torch.equal(other, first)
    # env i of a batch seeded s starts as a single env seeded s + i
    single = MUJOCO_ENVS[env_id](1, dtype=torch.float64, num_threads=1)
    one, _ = single.reset(seed=8)
    torch.testing.assert_close(one[0], first[1], rtol=0, atol=0)
    env.close()


@pytest.mark.parametrize("env_id", list(TASKS))
def test_start_states_follow_gymnasium_noise(env_id):
    """qpos = init + U(-s, s); qvel = init + s * N(0, 1) (Ant, s = 0.1) or init + U(-s, s) (Humanoid,
    s = 0.01): bounds, means and spreads over 400 starts, and gymnasium's own starts in the same bounds."""
    n = 400
    env = MUJOCO_ENVS[env_id](n, dtype=torch.float64)
    env.reset(seed=123)
    task = env.task
    s = task.reset_noise_scale
    dq = env.now["qpos"] - task.init_qpos
    dv = env.now["qvel"] - task.init_qvel
    assert np.all(np.abs(dq) <= s) and np.abs(dq).max() > 0.95 * s
    np.testing.assert_allclose(dq.mean(), 0, atol=0.05 * s)
    np.testing.assert_allclose(dq.std(), s / np.sqrt(3), rtol=0.05)
    if env_id == "Ant-v5":
        np.testing.assert_allclose(dv.mean(), 0, atol=0.05 * s)
        np.testing.assert_allclose(dv.std(), s, rtol=0.05)
        assert np.abs(dv).max() > 2.5 * s  # normal tails, not a bounded uniform
    else:
        assert np.all(np.abs(dv) <= s) and np.abs(dv).max() > 0.95 * s
        np.testing.assert_allclose(dv.std(), s / np.sqrt(3), rtol=0.05)
    ref = gym.make(env_id).unwrapped
    for seed in range(5):
        ref.reset(seed=seed)
        assert np.all(np.abs(ref.data.qpos - task.init_qpos) <= s)
        bound = 5 * s if env_id == "Ant-v5" else s
        assert np.all(np.abs(ref.data.qvel - task.init_qvel) <= bound)
    ref.close()
    env.close()

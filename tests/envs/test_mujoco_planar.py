"""The batched planar MuJoCo tasks (Hopper, Walker2d, HalfCheetah, Swimmer -v5) against gymnasium's own."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from mujoco_parity import assert_matches_gymnasium  # tests/envs is on sys.path (pytest's prepend import mode)

from neuroevo.envs.mujoco import MUJOCO_ENVS
from neuroevo.envs.mujoco.planar import TASKS
from neuroevo.envs.mujoco.task import load_model

ENV_IDS = list(TASKS)
SEEDS = (0, 1, 2)
LEGGED = ("Hopper-v5", "Walker2d-v5")

FORWARD_KEYS = ("x_position", "x_velocity", "reward_forward", "reward_ctrl")
LEGGED_KEYS = (*FORWARD_KEYS, "z_distance_from_origin", "reward_survive")
# gymnasium's step ``info`` keys, all compared step by step (test_info_keys checks the list is complete).
INFO_KEYS = {
    "Hopper-v5": LEGGED_KEYS,
    "Walker2d-v5": LEGGED_KEYS,
    "HalfCheetah-v5": FORWARD_KEYS,
    "Swimmer-v5": (*FORWARD_KEYS, "y_position", "y_velocity", "distance_from_origin"),
}

# gymnasium's reset noise: (scale, qvel noise is normal rather than uniform).
RESET_NOISE = {
    "Hopper-v5": (5e-3, False),
    "Walker2d-v5": (5e-3, False),
    "HalfCheetah-v5": (0.1, True),
    "Swimmer-v5": (0.1, False),
}

# Gymnasium sums the squared float32 action in float32; ours sums it in float64. In the action box that
# differs by < 1e-7, with actions up to 2x the box (HalfCheetah's ctrl_cost_weight 0.1) by up to ~4e-7.
WIDE_ATOL = 1e-6


def wide_actions(rng, space, t):
    """Actions uniform in twice the action box: half of them outside it."""
    return rng.uniform(2 * space.low, 2 * space.high).astype(np.float32)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_constants_match_gymnasium(env_id):
    """Model file, frame skip, time limit, spaces and initial state are gymnasium's -v5 defaults."""
    genv = gym.make(env_id)
    raw = genv.unwrapped
    env = MUJOCO_ENVS[env_id](2, dtype=torch.float64, num_threads=1)
    task = env.task
    assert env.spec_id == task.spec_id == env_id
    assert env.max_episode_steps == genv.spec.max_episode_steps == 1000
    assert task.frame_skip == raw.frame_skip and task.dt == raw.dt
    assert task.model.nq == raw.model.nq and task.model.nv == raw.model.nv and task.fields == ()
    assert env.single_observation_space.shape == raw.observation_space.shape == (env.obs_dim,)
    assert env.single_action_space == raw.action_space
    np.testing.assert_array_equal(task.init_qpos, raw.init_qpos)
    np.testing.assert_array_equal(task.init_qvel, raw.init_qvel)
    assert task.xml == raw.fullpath.split("/")[-1]
    _, normal_qvel = RESET_NOISE[env_id]
    assert task.num_reset_uniforms == task.model.nq + (2 if normal_qvel else 1) * task.model.nv
    genv.close()
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_keys(env_id):
    """Our reward terms carry exactly gymnasium's step ``info`` keys."""
    genv = gym.make(env_id)
    genv.reset(seed=0)
    *_, g_info = genv.step(genv.action_space.sample())
    env = MUJOCO_ENVS[env_id](2, dtype=torch.float64, num_threads=1)
    env.reset(seed=0)
    *_, info = env.step(torch.zeros(2, env.model.nu, dtype=torch.float64))
    assert set(g_info) == set(INFO_KEYS[env_id]) == set(info["reward_terms"])
    assert all(np.shape(v) == (2,) for v in info["reward_terms"].values())
    genv.close()
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_matches_gymnasium_whole_episodes(env_id):
    """Three whole episodes under random actions: obs, reward, flags and every info entry, every step.
    Hopper and Walker2d fall (terminate); HalfCheetah and Swimmer run into the 1000-step time limit."""
    runs = assert_matches_gymnasium(env_id, seeds=SEEDS, steps=1000, terms=INFO_KEYS[env_id])
    for _, trace in runs:
        _, _, _, terminated, truncated, _ = trace[-1]
        if env_id in LEGGED:
            assert terminated and not truncated and len(trace) < 1000
            assert all(info["reward_survive"] == 1.0 for *_, info in trace[:-1])
            assert trace[-1][5]["reward_survive"] == 0.0  # v5: no healthy reward on the unhealthy step
        else:
            assert truncated and not terminated and len(trace) == 1000


def boundary_states(init_qpos: np.ndarray, nv: int, rng: np.random.Generator):
    """(qpos [M, nq], qvel [M, nv]) probing every health bound: each qpos entry after x and each qvel entry
    set in turn at, just inside and just outside each limit (+-0.2, +-0.7, +-0.8, +-1, +-2, +-100), to NaN
    and to +-inf, plus random states."""
    nq = len(init_qpos)
    rows = [(init_qpos, np.zeros(nv))]
    for value in (0.0, 0.2, 0.7, 0.8, 1.0, 2.0, 100.0, float("nan"), float("inf")):
        for x in (value - 1e-9, value, value + 1e-9, -value - 1e-9, -value, -value + 1e-9):
            for i in range(1, nq + nv):
                state = np.concatenate([init_qpos, np.zeros(nv)])
                state[i] = x
                rows.append((state[:nq], state[nq:]))
    for _ in range(200):
        rows.append((init_qpos + rng.uniform(-1.5, 1.5, nq), rng.uniform(-150, 150, nv)))
    return np.array([p for p, _ in rows]), np.array([v for _, v in rows])


@pytest.mark.parametrize("env_id", LEGGED)
def test_is_healthy_matches_gymnasium(env_id):
    """Health (and so termination and the survive reward) on states at the edges of every healthy range,
    which random-action episodes rarely reach (e.g. Hopper's |qpos[2:], qvel| < 100)."""
    raw = gym.make(env_id).unwrapped
    task = TASKS[env_id](load_model(TASKS[env_id].xml))  # a task computes without an engine
    qpos, qvel = boundary_states(task.init_qpos, task.model.nv, np.random.default_rng(0))
    expected = []
    for p, v in zip(qpos, qvel, strict=True):
        raw.data.qpos[:] = p  # no mj_forward: is_healthy reads qpos / qvel only
        raw.data.qvel[:] = v
        expected.append(bool(raw.is_healthy))
    ours = task.is_healthy({"qpos": qpos, "qvel": qvel})
    assert ours.dtype == bool
    np.testing.assert_array_equal(ours, np.array(expected))
    assert 0 < sum(expected) < len(expected)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_matches_gymnasium_outside_action_bounds(env_id):
    """The control cost is on the action as given, not the clipped one (MuJoCo clamps the control)."""
    steps = 1000 if env_id in LEGGED else 200
    runs = assert_matches_gymnasium(
        env_id, seeds=SEEDS, steps=steps, action_fn=wide_actions, atol=WIDE_ATOL, terms=INFO_KEYS[env_id]
    )
    space = gym.make(env_id).action_space
    weight = TASKS[env_id].ctrl_cost_weight
    max_in_box = weight * float(np.sum(np.square(np.maximum(-space.low, space.high).astype(np.float64))))
    assert max(-info["reward_ctrl"] for _, trace in runs for *_, info in trace) > max_in_box


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_noise_distribution(env_id):
    """Start states from reset(seed=...) are the model's initial state plus gymnasium's reset noise."""
    n = 512
    env = MUJOCO_ENVS[env_id](n, dtype=torch.float64, num_threads=1)
    obs, _ = env.reset(seed=123)
    scale, normal_qvel = RESET_NOISE[env_id]
    dq = env.now["qpos"] - env.task.init_qpos
    dv = env.now["qvel"] - env.task.init_qvel
    np.testing.assert_allclose(obs.numpy(), env.task.observe(env.now), rtol=0, atol=0)
    # qpos: U(-scale, scale), every entry: bounded, mean 0, std scale / sqrt(3)
    assert np.all(np.abs(dq) <= scale)
    tol = 5 / math.sqrt(n)  # ~5 standard errors, relative to scale
    assert np.all(np.abs(dq.mean(axis=0)) < tol * scale)
    np.testing.assert_allclose(dq.std(axis=0), scale / math.sqrt(3), rtol=0.15)
    if normal_qvel:  # HalfCheetah: qvel + scale * N(0, 1), unbounded
        assert np.abs(dv).max() > 2 * scale
        np.testing.assert_allclose(dv.std(axis=0), scale, rtol=0.15)
    else:
        assert np.all(np.abs(dv) <= scale)
        np.testing.assert_allclose(dv.std(axis=0), scale / math.sqrt(3), rtol=0.15)
    assert np.all(np.abs(dv.mean(axis=0)) < tol * scale)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_seeding(env_id):
    """The same seed gives the same start; another seed, or the next reset, a different one."""
    a = MUJOCO_ENVS[env_id](4, dtype=torch.float64, num_threads=1)
    b = MUJOCO_ENVS[env_id](4, dtype=torch.float64, num_threads=2)
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    torch.testing.assert_close(obs_a, obs_b, rtol=0, atol=0)
    np.testing.assert_array_equal(a.now["qvel"], b.now["qvel"])
    assert len({tuple(row) for row in obs_a.tolist()}) == 4  # env i is seeded with 7 + i
    obs_next, _ = a.reset()
    assert not torch.equal(obs_next, obs_a)
    obs_a, _ = a.reset(seed=7)
    torch.testing.assert_close(obs_a, obs_b, rtol=0, atol=0)
    obs_other, _ = b.reset(seed=8)
    torch.testing.assert_close(obs_other[:3], obs_a[1:], rtol=0, atol=0)  # seed 8 + i == seed 7 + (i + 1)
    a.close()
    b.close()

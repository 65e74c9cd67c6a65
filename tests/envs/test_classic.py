"""The torch classic-control envs against gymnasium's own, stepped side by side; their start-state distribution
and seeding; no host syncs. The batched-env contract (sticky episodes, masks, time limits, bad actions) is
test_contract.py's."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from neuroevo.envs.classic import TORCH_ENVS

ENV_IDS = list(TORCH_ENVS)
# one gymnasium env per batch slot, each from its own seed, so the batch holds three different episodes
SEEDS = (3, 17, 101)

# Open-loop state tolerance in float64. Gymnasium's MountainCarContinuous stores its state as float32
# after every step, so over 999 steps its trajectory drifts ~1e-6 from exact float64 arithmetic; the
# one-step check (ours stepped from gymnasium's previous state) still holds it to ONE_STEP_ATOL.
STATE_ATOL = {"CartPole-v1": 1e-6, "Pendulum-v1": 1e-6, "Acrobot-v1": 1e-6, "MountainCarContinuous-v0": 1e-5}
ONE_STEP_ATOL = 1e-6

# The reset distribution of each env: per state entry, [low, high] as in gymnasium's reset().
RESET_BOUNDS = {
    "CartPole-v1": ([-0.05] * 4, [0.05] * 4),
    "Pendulum-v1": ([-math.pi, -1.0], [math.pi, 1.0]),
    "Acrobot-v1": ([-0.1] * 4, [0.1] * 4),
    "MountainCarContinuous-v0": ([-0.6, 0.0], [-0.4, 0.0]),
}


def _heuristic(env_id: str, obs: np.ndarray):
    """A policy that drives each env into its rarer branches: CartPole balances until the time limit,
    Acrobot swings up until it terminates, Pendulum spins into its speed clip, MountainCar reaches the
    goal after touching the left wall. The Box actions are out of range on purpose, to exercise the
    clipping of the force / torque."""
    if env_id == "CartPole-v1":
        return int(obs[2] + 0.5 * obs[3] > 0)
    if env_id == "Acrobot-v1":
        return 0 if obs[4] > 0 else 2
    if env_id == "Pendulum-v1":
        return np.array([3.0 if obs[2] >= 0 else -3.0], dtype=np.float32)
    return np.array([1.5 if obs[1] >= 0 else -1.5], dtype=np.float32)


def _policy(env_id: str, slot: int, obs: np.ndarray, space: gym.Space, rng: np.random.Generator):
    """Slot 0 acts at random, slot 1 follows the heuristic, slot 2 the heuristic with 20% random steps."""
    if slot == 0 or (slot == 2 and rng.random() < 0.2):
        return space.sample()
    return _heuristic(env_id, obs)


def _gym_state(env: gym.Env) -> np.ndarray:
    return np.asarray(env.unwrapped.state, dtype=np.float64)


def _side_by_side(env_id: str, dtype: torch.dtype, horizon: int | None = None) -> dict:
    """Step ``len(SEEDS)`` gymnasium envs and one batched torch env of that size from the same start
    states under the same actions, until every gymnasium episode ends (or ``horizon`` steps), and
    compare obs, reward, terminated and truncated at every step. Returns what happened, per slot."""
    f64 = dtype == torch.float64
    if f64:
        state_atol, obs_rtol, obs_atol = STATE_ATOL[env_id], 1e-6, STATE_ATOL[env_id]
    else:
        state_atol, obs_rtol, obs_atol = 1e-4, 1e-4, 1e-4
    gyms, gym_obs = [], []
    for seed in SEEDS:
        env = gym.make(env_id)
        gym_obs.append(env.reset(seed=seed)[0])
        env.action_space.seed(seed)
        gyms.append(env)
    ours = TORCH_ENVS[env_id](len(SEEDS), dtype=dtype)
    obs, _ = ours.reset(options={"state": torch.as_tensor(np.stack([_gym_state(g) for g in gyms]))})
    np.testing.assert_allclose(obs.numpy(), np.stack(gym_obs), rtol=1e-6, atol=1e-7)

    discrete = isinstance(ours.single_action_space, gym.spaces.Discrete)
    rng = np.random.default_rng(0)
    active = [True] * len(SEEDS)
    outcome = {"terminated": set(), "truncated": set(), "steps": 0}
    outcome["max_abs_state"] = np.zeros(ours.state.shape[1])
    while any(active) and (horizon is None or outcome["steps"] < horizon):
        t = outcome["steps"]
        idle = 0 if discrete else np.zeros(ours.single_action_space.shape)
        actions = [
            _policy(env_id, i, gym_obs[i], g.action_space, rng) if active[i] else idle
            for i, g in enumerate(gyms)
        ]
        if discrete:
            batch = torch.as_tensor(np.array(actions), dtype=torch.int64)
        else:
            # Gymnasium does its torque terms in the action's dtype (numpy keeps float32 when a float32
            # array meets a Python float); float64 actions (same values) make its arithmetic all-float64.
            actions = [np.asarray(a, dtype=np.float64 if f64 else np.float32) for a in actions]
            batch = torch.as_tensor(np.stack(actions), dtype=dtype)
        prev_state = torch.as_tensor(np.stack([_gym_state(g) for g in gyms]), dtype=dtype)
        obs, reward, terminated, truncated, _ = ours.step(batch)
        one_step, _, _ = ours.dynamics(prev_state, batch)
        assert obs.dtype == reward.dtype == dtype
        assert terminated.dtype == truncated.dtype == torch.bool

        for i, env in enumerate(gyms):
            if not active[i]:
                continue
            g_obs, g_reward, g_terminated, g_truncated, _ = env.step(actions[i])
            g_state = _gym_state(env)
            where = f"{env_id} {dtype} slot {i} step {t + 1}"
            np.testing.assert_allclose(ours.state[i].numpy(), g_state, atol=state_atol, err_msg=where)
            if f64:
                np.testing.assert_allclose(one_step[i].numpy(), g_state, atol=ONE_STEP_ATOL, err_msg=where)
            np.testing.assert_allclose(obs[i].numpy(), g_obs, rtol=obs_rtol, atol=obs_atol, err_msg=where)
            assert reward[i].item() == pytest.approx(g_reward, rel=obs_rtol, abs=obs_atol), where
            assert (bool(terminated[i]), bool(truncated[i])) == (g_terminated, g_truncated), where
            outcome["max_abs_state"] = np.maximum(outcome["max_abs_state"], np.abs(g_state))
            gym_obs[i] = g_obs
            if g_terminated or g_truncated:
                active[i] = False
                outcome["terminated" if g_terminated else "truncated"].add(i)
        outcome["steps"] = t + 1
    return outcome


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_and_limits_match_gymnasium(env_id):
    ref = gym.make(env_id)
    ours = TORCH_ENVS[env_id](5)
    assert ours.spec_id == env_id
    assert ours.single_observation_space == ref.observation_space
    assert ours.single_action_space == ref.action_space
    assert ours.single_observation_space.dtype == np.float32
    assert ours.max_episode_steps == ref.spec.max_episode_steps
    assert TORCH_ENVS[env_id](5, max_episode_steps=7).max_episode_steps == 7
    assert ours.observation_space.shape == (5, *ref.observation_space.shape)


# What the side-by-side episodes must reach, so the comparison covers termination and truncation.
EXPECTED_OUTCOME = {
    "CartPole-v1": {"terminated": {0}, "truncated": {1}},
    "Pendulum-v1": {"terminated": set(), "truncated": {0, 1, 2}},
    "Acrobot-v1": {"terminated": {1, 2}, "truncated": {0}},
    "MountainCarContinuous-v0": {"terminated": {1, 2}, "truncated": {0}},
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_full_episodes_match_gymnasium_float64(env_id):
    outcome = _side_by_side(env_id, torch.float64)
    expected = EXPECTED_OUTCOME[env_id]
    assert expected["terminated"] <= outcome["terminated"]
    assert expected["truncated"] <= outcome["truncated"]
    # a truncated slot ran the whole time limit side by side
    assert outcome["steps"] == gym.spec(env_id).max_episode_steps
    if env_id == "Pendulum-v1":
        assert outcome["max_abs_state"][1] == 8.0  # the speed clip was hit
    if env_id == "MountainCarContinuous-v0":
        assert outcome["max_abs_state"][0] == pytest.approx(1.2)  # the left wall was hit


# Boxes of start states, wider than any episode reaches, so that one step from them crosses every
# termination threshold, clip, wrap and wall; and the range of Box actions (beyond the action space,
# to exercise the clipping).
ONE_STEP_STATES = {
    "CartPole-v1": ([-2.6, -3.0, -0.25, -3.0], [2.6, 3.0, 0.25, 3.0]),
    "Pendulum-v1": ([-3 * math.pi, -8.0], [3 * math.pi, 8.0]),
    "Acrobot-v1": (
        [-math.pi, -math.pi, -4 * math.pi, -9 * math.pi],
        [math.pi, math.pi, 4 * math.pi, 9 * math.pi],
    ),
    "MountainCarContinuous-v0": ([-1.2, -0.07], [0.6, 0.07]),
}
ONE_STEP_ACTIONS = {"Pendulum-v1": 3.0, "MountainCarContinuous-v0": 1.5}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_one_step_from_scattered_states_matches_gymnasium(env_id):
    """One batched step of ours from 3000 scattered states against 3000 single steps of gymnasium's."""
    n = 3000
    rng = np.random.default_rng(11)
    low, high = (np.array(b) for b in ONE_STEP_STATES[env_id])
    states = rng.uniform(low, high, size=(n, len(low)))
    ours = TORCH_ENVS[env_id](n, dtype=torch.float64)
    if isinstance(ours.single_action_space, gym.spaces.Discrete):
        actions = rng.integers(ours.single_action_space.n, size=n)
    else:
        bound = ONE_STEP_ACTIONS[env_id]
        actions = rng.uniform(-bound, bound, size=(n, *ours.single_action_space.shape))
    ours.reset(options={"state": torch.as_tensor(states)})
    obs, reward, terminated, _, _ = ours.step(torch.as_tensor(actions))

    ref = gym.make(env_id)
    ref.reset(seed=0)
    g_next, g_obs, g_reward, g_terminated = [], [], [], []
    for state, action in zip(states, actions, strict=True):
        ref.reset()  # clears CartPole's after-termination bookkeeping and the time limit
        ref.unwrapped.state = state.copy()
        o, r, te, _, _ = ref.step(action)
        g_next.append(_gym_state(ref))
        g_obs.append(o)
        g_reward.append(r)
        g_terminated.append(te)
    np.testing.assert_allclose(ours.state.numpy(), np.stack(g_next), atol=ONE_STEP_ATOL)
    np.testing.assert_allclose(obs.numpy(), np.stack(g_obs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reward.numpy(), np.array(g_reward), atol=1e-6)
    assert terminated.tolist() == g_terminated
    if env_id != "Pendulum-v1":
        # the scattered states reach both sides of the termination test
        assert 0 < sum(g_terminated) < n


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_short_episodes_match_gymnasium_float32(env_id):
    outcome = _side_by_side(env_id, torch.float32, horizon=50)
    assert outcome["steps"] >= 10


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_start_state_is_a_function_of_the_seed_whatever_the_batch(env_id):
    """Beyond check_env's one batch: the same seed gives the same physical state in another env object of
    another size."""
    cls = TORCH_ENVS[env_id]
    env = cls(4)
    first, _ = env.reset(seed=0)
    state0 = env.state.clone()
    assert torch.equal(cls(4).reset(seed=0)[0], first)
    # slot i of a seed-s batch starts where slot 0 of a seed-(s + i) batch does
    for i in range(4):
        other = cls(2)
        other.reset(seed=i)
        assert torch.equal(other.state[0], state0[i])
    # the next unseeded reset draws a fresh start state
    env.reset()
    assert not torch.equal(env.state, state0)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_distribution_fills_gymnasiums_bounds(env_id):
    env = TORCH_ENVS[env_id](4096, dtype=torch.float64)
    env.reset(seed=123)
    low, high = (torch.tensor(b, dtype=torch.float64) for b in RESET_BOUNDS[env_id])
    state = env.state
    assert state.shape == (4096, len(low))
    assert bool(((state >= low) & (state <= high)).all())
    span = high - low
    spread = span > 0
    # 4096 uniform draws reach within 1% of both ends and average to the middle
    assert bool((state.min(0).values[spread] < low[spread] + 0.01 * span[spread]).all())
    assert bool((state.max(0).values[spread] > high[spread] - 0.01 * span[spread]).all())
    assert torch.allclose(state.mean(0), (low + high) / 2, atol=0.03 * span.max().item())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_runs_without_host_syncs(env_id):
    # Tensors on the meta device have no data, so any .item(), bool() or .cpu() inside reset / step
    # would raise: passing here means the same code runs on CUDA without a sync.
    env = TORCH_ENVS[env_id](8, device="meta")
    obs, _ = env.reset(seed=0)
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        action = torch.zeros(8, dtype=torch.int64, device="meta")
    else:
        action = torch.zeros(8, *space.shape, device="meta")
    obs, reward, terminated, truncated, _ = env.step(action)
    assert obs.device.type == "meta" and obs.shape == (8, env.obs_dim)
    assert reward.shape == terminated.shape == truncated.shape == (8,)
    assert terminated.dtype == torch.bool and reward.dtype == torch.float32

"""Population evaluation: masking, seeds, rounds, statistics, and its errors."""

import gymnasium as gym
import pytest
import torch

from neuroevo import rollout
from neuroevo.envs import make_env
from neuroevo.envs.base import VectorEnv
from neuroevo.policies import MLP, Linear, ObsNormalizer
from neuroevo.rollout import evaluate


def population(policy, popsize, seed=0, scale=0.5):
    return scale * torch.randn(popsize, policy.num_params, generator=torch.Generator().manual_seed(seed))


def test_fitness_depends_on_params_and_seeds_not_on_batch_slot():
    policy = Linear(4, 2)
    params = population(policy, 6)
    seeds = torch.arange(6 * 2).reshape(6, 2) + 100
    whole = evaluate(policy, params, make_env("CartPole-v1", 12, "cpu"), episodes=2, seed=seeds)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = evaluate(policy, params[perm], make_env("CartPole-v1", 12, "cpu"), episodes=2, seed=seeds[perm])
    torch.testing.assert_close(shuffled.episode_returns, whole.episode_returns[perm])
    # a shard of the population evaluated alone gives the same fitness member by member
    shard = evaluate(policy, params[2:4], make_env("CartPole-v1", 4, "cpu"), episodes=2, seed=seeds[2:4])
    torch.testing.assert_close(shard.returns, whole.returns[2:4])


def test_rounds_equal_side_by_side_episodes():
    policy = Linear(4, 2)
    params = population(policy, 3, seed=1)
    side_by_side = evaluate(policy, params, make_env("CartPole-v1", 3 * 4, "cpu"), episodes=4, seed=7)
    in_rounds = evaluate(policy, params, make_env("CartPole-v1", 3, "cpu"), episodes=4, seed=7)
    odd_rounds = evaluate(policy, params, make_env("CartPole-v1", 3 * 3, "cpu"), episodes=4, seed=7)
    torch.testing.assert_close(in_rounds.episode_returns, side_by_side.episode_returns)
    torch.testing.assert_close(odd_rounds.episode_returns, side_by_side.episode_returns)
    assert side_by_side.env_steps == int(side_by_side.episode_lengths.sum())


def test_masked_returns_equal_a_plain_gymnasium_loop():
    """Our lock-step batch on gymnasium's backend against one env at a time, step by step."""
    policy = MLP(3, 1, hidden=(8,))
    params = population(policy, 3, seed=2)
    result = evaluate(policy, params, make_env("Pendulum-v1", 3, "cpu", backend="gymnasium"), seed=11, max_steps=50)
    for p in range(3):
        net = policy.to_module(params[p])
        env = gym.make("Pendulum-v1")
        obs, _ = env.reset(seed=11 + p)
        total = 0.0
        for _ in range(50):
            action = net(torch.as_tensor(obs)[None]).clamp(-2.0, 2.0)[0].detach().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                break
        assert result.returns[p].item() == pytest.approx(total, rel=1e-4)
    assert result.env_steps == 150


def test_finished_episodes_stop_counting():
    policy = Linear(4, 2)
    params = torch.zeros(2, policy.num_params)
    params[0, -2:] = torch.tensor([1.0, 0.0])  # always push left: falls within a few dozen steps
    result = evaluate(policy, params, make_env("CartPole-v1", 2, "cpu"), seed=0)
    assert result.episode_lengths[0, 0] < 30
    assert result.returns[0] == result.episode_lengths[0, 0]  # +1 per step, nothing after the fall


def test_the_forward_drops_finished_members_without_changing_any_episode(monkeypatch):
    """Episodes of very different lengths: once at most half of the members play, the forward runs only them;
    every member's episodes are those of the full forward."""
    policy = MLP(4, 2, hidden=(8,))
    params = population(policy, 8, seed=4, scale=1.0)
    sizes = []

    class Counting(MLP):
        def __call__(self, params, obs):
            sizes.append(params.shape[0])
            return super().__call__(params, obs)

    counting = Counting(4, 2, hidden=(8,))
    kwargs = dict(episodes=2, seed=5, normalizer=None, collect_obs_stats=True)
    compacted = evaluate(counting, params, make_env("CartPole-v1", 16, "cpu"), **kwargs)
    monkeypatch.setattr(rollout, "COMPACT_AT", 0.0)
    full = evaluate(policy, params, make_env("CartPole-v1", 16, "cpu"), **kwargs)
    lengths = full.episode_lengths.amax(1)
    assert lengths.max() > 4 * lengths.min()  # some members play far longer than others
    assert sizes[0] == 8 and min(sizes) < 4 and sorted(sizes, reverse=True) == sizes
    assert torch.equal(compacted.episode_lengths, full.episode_lengths)
    torch.testing.assert_close(compacted.episode_returns, full.episode_returns)
    for a, b in zip(compacted.obs_stats, full.obs_stats, strict=True):
        torch.testing.assert_close(a, b)
    assert compacted.env_steps == full.env_steps


def test_obs_stats_cover_exactly_the_steps_taken():
    policy = Linear(4, 2)
    params = population(policy, 4, seed=3)
    result = evaluate(policy, params, make_env("CartPole-v1", 4, "cpu"), seed=0, collect_obs_stats=True)
    count, mean, m2 = result.obs_stats
    assert int(count) == result.env_steps
    normalizer = ObsNormalizer(4)
    normalizer.merge(result.obs_stats)
    assert torch.all(normalizer.var > 0) and torch.all(mean.abs() < 3)


def test_normalizer_is_applied_before_the_policy():
    policy = Linear(4, 2)
    params = population(policy, 2, seed=4)
    normalizer = ObsNormalizer(4)
    normalizer.merge((torch.tensor(100.0), torch.tensor([0.0, 0.0, 0.1, 0.0]), torch.full((4,), 1e-4)))
    plain = evaluate(policy, params, make_env("CartPole-v1", 2, "cpu"), seed=0)
    normed = evaluate(policy, params, make_env("CartPole-v1", 2, "cpu"), seed=0, normalizer=normalizer)
    assert not torch.equal(plain.episode_returns, normed.episode_returns)


class NaNRewardEnv(VectorEnv):
    """CartPole whose env 0 pays NaN rewards and, after its first step, observes NaN."""

    def __init__(self, num_envs):
        self.inner = make_env("CartPole-v1", num_envs, "cpu")
        self.num_envs, self.device, self.spec_id = num_envs, self.inner.device, "NaNCartPole"
        self.max_episode_steps = 20
        self._init_spaces(self.inner.single_observation_space, self.inner.single_action_space)

    def reset(self, *, seed=None, options=None):
        return self.inner.reset(seed=seed, options=options)

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.inner.step(actions)
        reward, obs = reward.clone(), obs.clone()
        reward[0] = obs[0, 1] = float("nan")
        return obs, reward, terminated, truncated, info


def test_nan_rewards_are_reported_per_episode():
    policy = Linear(4, 2)
    result = evaluate(policy, torch.zeros(3, policy.num_params), NaNRewardEnv(3), seed=0, collect_obs_stats=True)
    assert result.nonfinite_episodes == 1
    assert torch.isnan(result.returns[0]) and torch.isfinite(result.returns[1:]).all()
    # NaN observations are left out of the statistics: only env 0's first (finite) one counts
    count, mean, m2 = result.obs_stats
    assert int(count) == result.env_steps - int(result.episode_lengths[0, 0]) + 1
    assert torch.isfinite(mean).all() and torch.isfinite(m2).all()


def test_input_errors():
    env = make_env("CartPole-v1", 4, "cpu")
    with pytest.raises(ValueError, match="not a multiple of the population size 3"):
        evaluate(Linear(4, 2), torch.zeros(3, 10), env)
    with pytest.raises(ValueError, match=r"params must be \[P, D\]"):
        evaluate(Linear(4, 2), torch.zeros(10), env)
    with pytest.raises(ValueError, match="CartPole-v1's action space Discrete\\(2\\) needs 2"):
        evaluate(Linear(4, 3), torch.zeros(4, 15), env)
    with pytest.raises(ValueError, match="episodes must be positive"):
        evaluate(Linear(4, 2), torch.zeros(4, 10), env, episodes=0)
    with pytest.raises(ValueError, match=r"seed tensor must be \[P, episodes\]"):
        evaluate(Linear(4, 2), torch.zeros(4, 10), env, seed=torch.zeros(2, 2, dtype=torch.int64))


def test_make_env_errors_and_backends():
    with pytest.raises(ValueError, match="unknown env id 'Nope-v0'"):
        make_env("Nope-v0", 2)
    with pytest.raises(ValueError, match="no torch-native env 'MountainCar-v0'"):
        make_env("MountainCar-v0", 2, backend="torch")
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        make_env("CartPole-v1", 2, backend="jax")
    with pytest.raises(ValueError, match="num_envs must be positive"):
        make_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="Blackjack-v1: neuroevo needs a Box observation space"):
        make_env("Blackjack-v1", 2)
    env = make_env("MountainCar-v0", 2, "cpu")  # auto: gymnasium for ids without a torch version
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 2) and obs.dtype == torch.float32
    with pytest.raises(ValueError, match="actions of shape \\(3,\\) do not fit"):
        env.step(torch.zeros(3, dtype=torch.int64))


def test_compiled_step_matches_eager():
    """torch.compile fuses the step; the numbers agree to float rounding (Pendulum is not chaotic over
    a short horizon), statistics included."""
    policy = MLP(3, 1, hidden=(8,))
    params = population(policy, 4, seed=5)
    normalizer = ObsNormalizer(3)
    normalizer.merge(ObsNormalizer.batch_stats(torch.randn(50, 3)))
    kwargs = dict(seed=3, max_steps=40, normalizer=normalizer, collect_obs_stats=True)
    eager = evaluate(policy, params, make_env("Pendulum-v1", 4, "cpu"), **kwargs)
    compiled = evaluate(policy, params, make_env("Pendulum-v1", 4, "cpu"), compile=True, **kwargs)
    torch.testing.assert_close(compiled.episode_returns, eager.episode_returns, rtol=1e-4, atol=1e-3)
    assert torch.equal(compiled.episode_lengths, eager.episode_lengths)
    for a, b in zip(compiled.obs_stats, eager.obs_stats, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_reward_shift_is_subtracted_per_step_of_running_episodes():
    policy = Linear(4, 2)
    params = population(policy, 3, seed=6)
    plain = evaluate(policy, params, make_env("CartPole-v1", 3, "cpu"), seed=2)
    shifted = evaluate(policy, params, make_env("CartPole-v1", 3, "cpu"), seed=2, reward_shift=1.0)
    assert torch.equal(shifted.episode_lengths, plain.episode_lengths)
    torch.testing.assert_close(shifted.returns, plain.returns - plain.episode_lengths[:, 0].float())

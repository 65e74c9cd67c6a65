"""The evaluator interface: the local evaluator gives what the rollout gives for the same members and seeds,
from a compact population or a params tensor; the settings check their input once; the trainer runs on any
evaluator it is handed (the Ray evaluator's equality with the local one is in tests/distributed)."""

import pytest
import torch

import neuroevo
from neuroevo.algorithms import make_optimizer, materialize
from neuroevo.evaluator import EnvFactory, Evaluator, LocalEvaluator, make_evaluator
from neuroevo.policies import MLP
from neuroevo.rollout import EvalSettings, rollout

POLICY = MLP(obs_dim=4, act_dim=2, hidden=(8,), activation="tanh")


def _ga():
    opt = make_optimizer("ga", POLICY.init_params(torch.Generator().manual_seed(0)), None, seed=3, popsize=6,
                         truncation=2, num_elites=1, noise_size=2**18, sigma=0.3)
    opt.ask()
    opt.tell(torch.arange(6.0))  # a second generation: elites and children of parents
    return opt


def _same(a, b):
    assert torch.equal(a.returns, b.returns) and torch.equal(a.episode_lengths, b.episode_lengths)
    assert a.env_steps == b.env_steps


def test_a_population_with_or_without_its_optimizer_and_its_rows_evaluate_alike():
    opt = _ga()
    population = opt.ask_population()
    params = materialize(population, opt.noise)
    settings = EvalSettings(episodes=2, max_steps=50, seed=4, collect_obs_stats=True)
    reference = rollout(POLICY, params, neuroevo.make_env("CartPole-v1", 12, "cpu"), settings)
    with LocalEvaluator(POLICY, EnvFactory("CartPole-v1", device="cpu")) as evaluator:
        for members, optimizer in ((population, opt), (population, None), (params, None)):
            _same(evaluator.evaluate(members, settings, optimizer), reference)
        assert list(evaluator._envs) == [12]  # one env per population size, made once


def test_shards_of_the_population_evaluate_like_the_whole():
    """shard_size: members evaluated a few at a time, rows built per shard, with their own episode seeds."""
    opt = _ga()
    population = opt.ask_population()
    settings = EvalSettings(episodes=2, max_steps=50, seed=4, collect_obs_stats=True)
    with LocalEvaluator(POLICY, EnvFactory("CartPole-v1", device="cpu")) as whole:
        reference = whole.evaluate(population, settings, opt)
    with LocalEvaluator(POLICY, EnvFactory("CartPole-v1", device="cpu"), shard_size=4) as sharded:
        result = sharded.evaluate(population, settings, opt)
        assert sorted(sharded._envs) == [4, 8]  # shards of 4 and 2 members, 2 episodes each
    _same(result, reference)
    torch.testing.assert_close(result.obs_stats[1], reference.obs_stats[1], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="shard_size must be positive"):
        LocalEvaluator(POLICY, EnvFactory("CartPole-v1"), shard_size=0)


def test_settings_refuse_bad_input_with_one_line():
    with pytest.raises(ValueError, match="episodes must be positive"):
        EvalSettings(episodes=0)
    with pytest.raises(ValueError, match="max_steps must be positive"):
        EvalSettings(max_steps=0)
    with pytest.raises(ValueError, match=r"seed tensor must be \[P, episodes\] = \[3, 2\], got \(3, 1\)"):
        EvalSettings(episodes=2, seed=torch.zeros(3, 1, dtype=torch.int64)).seeds(3)
    assert EvalSettings(seed=5).seeds(2).tolist() == [[5], [6]]
    unseeded = EvalSettings().fixed()
    assert isinstance(unseeded.seed, int) and unseeded.fixed() is unseeded


def test_make_evaluator_picks_by_workers_and_refuses_a_negative_count():
    assert isinstance(make_evaluator(POLICY, EnvFactory("CartPole-v1")), LocalEvaluator)
    with pytest.raises(ValueError, match="workers must be 0"):
        make_evaluator(POLICY, EnvFactory("CartPole-v1"), -1)


class CountingEvaluator(Evaluator):
    """A user's evaluator: delegates to the local one and counts the members it was asked for."""

    def __init__(self, inner):
        self.inner, self.members, self.last_metrics = inner, 0, {}

    def evaluate(self, population, settings, optimizer=None):
        self.members += len(population)
        self.last_metrics = {"custom/members": self.members}
        return self.inner.evaluate(population, settings, optimizer)

    def close(self):
        self.inner.close()


def test_the_trainer_runs_on_any_evaluator_with_the_same_trajectory():
    config = neuroevo.resolve_config("CartPole-v1", {"run": {"algo": "ars", "generations": 2, "target": None,
                                                             "device": "cpu", "eval_episodes": 2},
                                                     "env": {"max_steps": 40}, "ars": {"popsize": 8}})
    plain = neuroevo.Trainer(config).run()
    trainer = neuroevo.Trainer(config)
    counting = CountingEvaluator(LocalEvaluator(trainer.policy, trainer.envs))
    trainer = neuroevo.Trainer(config, evaluator=counting)
    result = trainer.run()
    assert counting.members == 16 and result.history[-1]["custom/members"] == 16
    strip = [{k: v for k, v in row.items() if not k.startswith(("time/", "custom/"))} for row in result.history]
    assert strip == [{k: v for k, v in row.items() if not k.startswith("time/")} for row in plain.history]

"""The PPO baseline: RL Zoo schedules, learning on CartPole, the Trainer's metrics format, VecNormalize."""

import csv
import json

import numpy as np
import pytest

from neuroevo import Trainer, resolve_config
from neuroevo.baselines.ppo import ppo_budget, schedule, train_ppo, warn_if_untuned


def test_schedule_reads_the_zoo_notation():
    assert schedule(3e-4, "lr") == pytest.approx(3e-4)
    lin = schedule("lin_0.001", "lr")
    assert lin(1.0) == pytest.approx(0.001)  # SB3 passes progress_remaining: 1 at the start, 0 at the end
    assert lin(0.25) == pytest.approx(0.00025)
    for bad in ("exp_0.1", "lin_x", True):
        with pytest.raises(ValueError, match="ppo.lr must be a number or 'lin_<number>'"):
            schedule(bad, "lr")


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """PPO with the Zoo's CartPole-v1 settings for 12k steps, seed 0 (a few seconds)."""
    out = tmp_path_factory.mktemp("ppo") / "run"
    config = resolve_config("CartPole-v1", {"run": {"steps": 12_000, "seed": 0, "eval_episodes": 10},
                                            "ppo": {"eval_points": 6}})
    return out, train_ppo(config, out)


def test_ppo_learns_cartpole_with_the_zoo_settings(cartpole_run):
    _, result = cartpole_run
    returns = [row["eval/return_mean"] for row in result.history]
    assert result.env_steps >= 12_000
    assert result.best_eval_return >= 300  # CartPole's random policy lasts about 20 steps
    assert result.best_eval_return >= returns[0] + 200  # and it improved on its first evaluation (2k steps)


def test_ppo_is_deterministic_for_a_seed(cartpole_run):
    _, result = cartpole_run
    config = resolve_config("CartPole-v1", {"run": {"steps": 4096, "seed": 0, "eval_episodes": 10},
                                            "ppo": {"eval_points": 2}})
    again = [train_ppo(config).history for _ in range(2)]
    assert [r["eval/return_mean"] for r in again[0]] == [r["eval/return_mean"] for r in again[1]]


def test_metrics_rows_have_the_trainers_format(cartpole_run, tmp_path):
    out, result = cartpole_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == json.loads(json.dumps(result.history))  # written as the run went, one row per evaluation
    with open(out / "progress.csv", newline="") as f:  # the shared logger's default csv, same rows and names
        table = list(csv.DictReader(f))
    assert [float(r["eval/return_mean"]) for r in table] == [r["eval/return_mean"] for r in rows]
    assert set(table[0]) == set().union(*rows) and (out / "command.txt").read_text().strip()
    trainer_config = resolve_config("CartPole-v1", {"run": {"algo": "es", "generations": 1, "target": None}})
    trainer_row = Trainer(trainer_config).run().history[-1]
    counters = ("generation", "env_steps", "episodes")
    shared = {k for k in trainer_row if k in counters or k.startswith(("eval/", "time/"))}
    for row in rows:
        assert shared <= row.keys()
        assert row["eval/best_return"] == max(r["eval/return_mean"] for r in rows if r["env_steps"] <= row["env_steps"])
    steps = [row["env_steps"] for row in rows]
    assert steps == sorted(steps) and steps[-1] == result.env_steps
    assert all(isinstance(row["train/value_loss"], float) for row in rows[1:])  # SB3's losses come along
    assert (out / "model.zip").exists() and (out / "config.json").exists()


def test_normalize_wraps_vecnormalize_and_evaluations_report_raw_returns(tmp_path):
    config = resolve_config("CartPole-v1", {"run": {"steps": 512, "eval_episodes": 4},
                                            "ppo": {"normalize": True, "eval_points": 1}})
    result = train_ppo(config, tmp_path / "run")
    assert (tmp_path / "run" / "vecnormalize.pkl").exists()
    # CartPole pays 1 per step: raw returns are whole numbers, VecNormalize's scaled rewards would not be
    assert float(result.final_eval_return * 4) == pytest.approx(round(result.final_eval_return * 4))
    assert np.isfinite(result.final_eval_return) and result.final_eval_return >= 8


def test_untuned_task_warns_and_too_small_budget_says_the_minimum():
    config = resolve_config("CartPole-v1", {"ppo": {"source": None}})
    with pytest.warns(UserWarning, match="no PPO hyperparameters from the RL Zoo.*Stable-Baselines3's defaults"):
        assert warn_if_untuned(config) is False
    small = resolve_config("CartPole-v1", {"run": {"steps": 100}})
    with pytest.raises(ValueError, match=r"too small for one PPO update .*8 envs x 32 steps.*at least 256"):
        ppo_budget(small)


def test_the_atari_card_trains_ppo_as_the_zoo_and_evaluates_it_on_the_cards_protocol(tmp_path):
    pytest.importorskip("ale_py")
    from stable_baselines3.common.atari_wrappers import AtariWrapper
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    from neuroevo.baselines import sb3
    from neuroevo.baselines.ppo import build_model

    config = resolve_config("ALE/Frostbite-v5", {
        "run": {"seed": 0, "eval_episodes": 2, "steps": 64}, "env": {"max_steps": 40},
        "ppo": {"num_envs": 2, "n_steps": 16, "batch_size": 16, "n_epochs": 1, "eval_points": 2}})
    assert config.ppo.policy == "CnnPolicy" and config.ppo.frame_stack == 4  # the Zoo's atari entry, from the card
    model = build_model(config, seed=0)
    assert isinstance(model.policy, ActorCriticCnnPolicy) and model.observation_space.shape == (4, 84, 84)
    inner = model.get_env().venv.venv.envs[0]  # VecTransposeImage > VecFrameStack > DummyVecEnv > TimeLimit
    assert type(inner.env) is AtariWrapper and inner._max_episode_steps == 40  # the card's cap, in agent steps
    assert inner.unwrapped.ale.getFloat("repeat_action_probability") == 0  # no sticky actions, as the card
    model.get_env().close()
    # evaluations run on neuroevo eval's env: the card's preprocessing, unclipped score, the card's time limit
    evaluator = sb3.DeterministicEvaluator("ALE/Frostbite-v5", 2, seed=0, max_steps=40, **config.env.kwargs)
    assert evaluator.envs[0].observation_space.shape == (4, 84, 84) and evaluator.envs[0].spec.max_episode_steps == 40
    evaluator.close()

    result = train_ppo(config, tmp_path / "run")
    assert result.env_steps == 64 and len(result.history) == 2
    assert all(np.isfinite(row["eval/return_mean"]) and row["eval/env_steps"] > 0 for row in result.history)

    with pytest.raises(ValueError, match="env_wrapper = 'atari' needs an ALE"):
        train_ppo(resolve_config("CartPole-v1", {"run": {"steps": 64}, "ppo": {"env_wrapper": "atari"}}))
    with pytest.raises(ValueError, match=r"ppo.frame_stack \(2\) must be the env's frame_stack \(4\)"):
        train_ppo(resolve_config("ALE/Frostbite-v5", {"run": {"steps": 64}, "ppo": {"frame_stack": 2}}))
    with pytest.raises(ValueError, match="ppo.frame_stack is for env_wrapper = 'atari'"):
        train_ppo(resolve_config("CartPole-v1", {"run": {"steps": 64}, "ppo": {"frame_stack": 4}}))
    with pytest.raises(ValueError, match="ppo.policy must be one of"):
        train_ppo(resolve_config("CartPole-v1", {"run": {"steps": 64}, "ppo": {"policy": "Nope"}}))

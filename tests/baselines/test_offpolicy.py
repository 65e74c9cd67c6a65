"""SAC and TD3: the cards' RL Zoo tables, tiny runs in the Trainer's metrics format, one-line errors."""

import json

import pytest

from neuroevo import resolve_config
from neuroevo.baselines.offpolicy import build_td3
from neuroevo.baselines.sb3 import check_settings, make_training_envs, train_baseline
from neuroevo.compare import check_runs, parse_algos

TINY = {"run": {"steps": 600, "seed": 0, "eval_episodes": 2}, "env": {"max_steps": 60}}


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_tiny_run_writes_the_trainers_rows_and_the_model(algo, tmp_path):
    config = resolve_config("Pendulum-v1", {**TINY, algo: {"learning_starts": 100, "train_freq": 2,
                                                          "eval_points": 3, "save_every": 200}})
    with pytest.warns(UserWarning, match=f"no {algo.upper()} hyperparameters from the RL Zoo"):
        result = train_baseline(algo, config, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows == json.loads(json.dumps(result.history))
    assert [r["env_steps"] for r in rows] == [200, 400, 600] and result.env_steps == 600
    assert [r["generation"] for r in rows] == [100, 200, 300]  # rounds of train_freq=2 env steps
    assert all(r["eval/env_steps"] == 120 * (i + 1) for i, r in enumerate(rows))  # 2 episodes of 60 steps each
    assert "train/critic_loss" in rows[-1]  # SB3's losses come along once it trains (after learning_starts)
    assert (tmp_path / "run" / "model.zip").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()  # the saves (with the replay buffer) go at the end


def test_cards_hold_the_zoo_settings():
    hopper = resolve_config("Hopper-v5")
    assert hopper.sac.learning_starts == 10_000 and hopper.sac.steps == 1_000_000 and hopper.sac.lr == 3e-4
    assert hopper.td3.hidden == [400, 300] and hopper.td3.noise_type == "normal" and hopper.td3.lr == 1e-3
    assert hopper.td3.reference_return == 3606.0 and "td3.yml" in hopper.td3.source
    assert resolve_config("Humanoid-v5").sac.steps == 2_000_000 and resolve_config("Swimmer-v5").sac.gamma == 0.9999
    assert parse_algos("es,sac,td3") == ["es", "sac", "td3"]


def test_td3_noise_is_in_units_of_the_half_range():
    config = resolve_config("Hopper-v5", {"td3": {"buffer_size": 100}})
    model = build_td3(config.td3, make_training_envs(config, "td3", 0), 0)
    assert model.action_noise is not None and model.action_noise._sigma.tolist() == [0.1, 0.1, 0.1]
    assert [m.out_features for m in model.actor.mu if hasattr(m, "out_features")] == [400, 300, 3]  # Zoo net_arch


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^sac needs continuous \(Box\) actions; CartPole-v1's are Discrete\(2\)$"):
        check_runs("CartPole-v1", ["sac"], 1000)
    bad = {"sac": {"ent_coef": "sometimes"}, "td3": {"noise_type": "pink"}}
    with pytest.raises(ValueError, match="sac.ent_coef must be a positive number, 'auto' or 'auto_<number>'"):
        check_settings(resolve_config("Pendulum-v1", bad), "sac")
    with pytest.raises(ValueError, match="td3.noise_type must be one of normal, ornstein-uhlenbeck or unset"):
        check_settings(resolve_config("Pendulum-v1", bad), "td3")
    with pytest.raises(ValueError, match="td3.save_every must be a positive number of env steps or unset"):
        check_settings(resolve_config("Pendulum-v1", {"td3": {"save_every": 0}}), "td3")

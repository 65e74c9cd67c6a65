"""What a new user met in their first hour: each fixed, each held here (one test per item)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import neuroevo
from neuroevo.algorithms import ARS
from neuroevo.cli import build_parser, main
from neuroevo.playback import evaluate_checkpoint
from neuroevo.policies import Linear, ObsNormalizer

ROOT = Path(__file__).parents[1]


def test_save_policy_from_an_ask_tell_loop_is_read_by_load_policy_and_eval(tmp_path, capsys):
    env = neuroevo.make_env("CartPole-v1", 8, "cpu")
    policy = Linear(obs_dim=4, act_dim=2)
    ars = ARS(policy.init_params(torch.Generator().manual_seed(0)), popsize=8, sigma=0.05, lr=0.05)
    normalizer = ObsNormalizer(4)
    for generation in range(2):
        result = neuroevo.evaluate(policy, ars.ask(), env, seed=generation, normalizer=normalizer,
                                   collect_obs_stats=True)
        ars.tell(result.returns)
        normalizer.merge(result.obs_stats)
    path = neuroevo.save_policy(tmp_path / "mine.pt", policy, ars.center, env.single_action_space, normalizer,
                                env_id="CartPole-v1", generation=2)

    deployed = neuroevo.load_policy(path)
    ours = neuroevo.evaluate(policy, ars.center[None], neuroevo.make_env("CartPole-v1", 3, "cpu"), 3,
                             normalizer=normalizer, seed=0).episode_returns[0].tolist()
    assert evaluate_checkpoint(path, episodes=3, backend="torch")["returns"] == ours
    assert deployed(torch.zeros(5, 4)).shape == (5,)
    assert main(["eval", str(path), "--episodes", "3"]) == 0
    assert "CartPole-v1 (gymnasium): mean return" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"flat params of shape \(3,\) should be \[10\]"):
        neuroevo.save_policy(tmp_path / "bad.pt", policy, torch.zeros(3), env.single_action_space)


def test_rerunning_the_trainer_example_says_what_to_do_in_the_api_words(tmp_path):
    config = neuroevo.resolve_config("CartPole-v1", {"run": {"algo": "ga", "generations": 1, "eval_episodes": 2}})
    neuroevo.Trainer(config, out=tmp_path / "run").run()
    with pytest.raises(ValueError, match=r"continue it with Trainer.resume\(.*\), start afresh with "
                                         r"Trainer\(config, out, overwrite=True\)") as err:
        neuroevo.Trainer(config, out=tmp_path / "run")
    assert "--" not in str(err.value)  # no CLI flags for a Python user
    (tmp_path / "run" / "stale.txt").write_text("from the old run")
    neuroevo.Trainer(config, out=tmp_path / "run", overwrite=True).run()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (tmp_path / "run" / "stale.txt").exists()


def test_train_help_shows_what_is_required_and_explains_the_budget():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    text = " ".join(train.format_help().split())
    assert "(--out DIR | --resume DIR)" in text  # one of them is required: not in [brackets]
    for flag in ("--generations", "--steps", "--target"):
        action = next(a for a in train._actions if flag in a.option_strings)
        assert action.help and len(action.help) > 10
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--env", "CartPole-v1"])


def test_a_policy_file_records_the_run_env_settings(tmp_path):
    config = neuroevo.resolve_config("CartPole-v1", {"run": {"algo": "ga", "generations": 1, "eval_episodes": 2},
                                                     "env": {"max_steps": 30}})
    neuroevo.Trainer(config, out=tmp_path).run()
    record = torch.load(tmp_path / "best_policy.pt", weights_only=True)
    assert record["env"] == {"entry_point": None, "kwargs": {}, "max_steps": 30}
    summary = evaluate_checkpoint(tmp_path, episodes=4)  # episodes capped as in training
    assert max(summary["returns"]) <= 30
    assert json.loads((tmp_path / "config.json").read_text())["env"]["max_steps"] == 30



def test_neuroevo_eval_gives_the_returns_of_a_plain_gymnasium_loop_on_pendulum(tmp_path, capsys):
    """Pendulum's swing-up amplifies last-bit differences: a batched forward (all episodes at once) rounds
    otherwise than the one-observation forward of a deployment loop. neuroevo eval plays the loop itself."""
    policy = neuroevo.policies.make_policy("mlp", 3, 1, hidden=[32, 32])
    params = 2.0 * policy.init_params(torch.Generator().manual_seed(1))
    normalizer = ObsNormalizer(3)
    normalizer.merge((torch.tensor(100.0), torch.tensor([0.1, -0.2, 0.3]), torch.tensor([50.0, 40.0, 300.0])))
    env = gym.make("Pendulum-v1")
    path = neuroevo.save_policy(tmp_path / "p.pt", policy, params, env.action_space, normalizer, "Pendulum-v1")

    module = neuroevo.load_policy(path)  # the documented way: obs as gymnasium gives it, one at a time
    plain = []
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                action = module(torch.as_tensor(obs)).numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        plain.append(total)

    summary = evaluate_checkpoint(path, episodes=6, seed=0)
    assert summary["returns"] == plain
    assert main(["eval", str(path), "--episodes", "6"]) == 0
    assert f"mean return {np.mean(plain):.2f}" in capsys.readouterr().out


def test_the_first_run_of_scripts_train_sh_solves_cartpole_for_gymnasium(tmp_path):
    """scripts/train.sh's own command line (its settings, not a copy), run to the end."""
    line = next(line for line in (ROOT / "scripts" / "train.sh").read_text().splitlines()
                if line.startswith("exec .venv/bin/neuroevo train"))
    argv = shlex.split(line)[2:]
    argv[argv.index("--out") + 1] = str(tmp_path / "first")
    assert main([*argv, "--quiet"]) == 0
    rows = [json.loads(row) for row in (tmp_path / "first" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["eval/return_mean"] == 500.0 and len(rows) <= 6  # solved in a few generations (seed 0: 3)
    assert evaluate_checkpoint(tmp_path / "first", episodes=100)["mean"] >= 475.0

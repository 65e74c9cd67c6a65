"""A user's own env and policy network, named by import path: trained from the CLI, then evaluated, resumed and
rebuilt in another process (as Ray workers and a later ``neuroevo eval`` do) from the run directory alone.

The user's package is ``tests/data/neuroevo_user_pkg`` (an env class registered on import as ``Drift-v0``, and
a network that registers its output layer first), put on ``sys.path`` here and on PYTHONPATH for subprocesses.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from torch import nn

import neuroevo
from neuroevo.cli import main
from neuroevo.playback import evaluate_checkpoint
from neuroevo.policies import ModulePolicy

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def user_package(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_trains_evaluates_and_resumes_a_user_env_and_network(tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "--env", "neuroevo_user_pkg:Drift-v0", "--env-kwargs", "size=3", "gain=0.4",
             "--policy-module", "neuroevo_user_pkg.nets:TinyNet", "--policy-kwargs", "hidden=4",
             "--algo", "ars", "--generations", "2", "--out", str(run), "--quiet"]
    assert main(train) == 0
    # shown once (the CLI prints warnings as one line each), before training
    captured = capsys.readouterr()
    checker = "Drift-v0: gymnasium's env checker: A Box observation space minimum value is -infinity"
    assert captured.err.count(checker) == 1
    config = json.loads((run / "config.json").read_text())
    assert config["env"]["kwargs"] == {"size": 3, "gain": 0.4}
    assert config["policy"] | {"hidden": None} == {
        "kind": "module", "module": "neuroevo_user_pkg.nets:TinyNet", "kwargs": {"hidden": 4},
        "hidden": None, "activation": "tanh", "normalize_obs": True, "arch": "nature", "padding": "valid", "vbn": 0}
    # TinyNet(obs_dim=3, act_dim=1, hidden=4): 3*4+4 + 4*1+1 parameters, the env's size=3 observations
    assert "21 parameters" in captured.out

    assert main(["eval", str(run), "--episodes", "4"]) == 0
    assert "over 4 episodes" in capsys.readouterr().out
    summary = evaluate_checkpoint(run, episodes=4)
    assert summary["env_id"] == "neuroevo_user_pkg:Drift-v0" and len(summary["returns"]) == 4
    deployed = neuroevo.load_policy(run)  # rebuilt from the import path: no module to pass
    assert deployed(torch.zeros(2, 3)).shape == (2, 1)

    assert main(["train", "--resume", str(run), "--generations", "3", "--quiet"]) == 0
    assert [row["generation"] for row in _rows(run)] == [1, 2, 3]
    # the same seed without the interruption gives the same run: the module's init follows the run seed
    again = tmp_path / "again"
    assert main([*train[:-4], "3", "--out", str(again), "--quiet"]) == 0
    assert _rows(again)[-1]["train/fitness_mean"] == _rows(run)[-1]["train/fitness_mean"]


def test_an_entry_point_run_is_rebuilt_in_a_fresh_process(tmp_path):
    """An unregistered env class and a module by path: a fresh interpreter (a Ray worker, a later eval)
    registers and builds them from what the run recorded."""
    run = tmp_path / "run"
    assert main(["train", "--env", "MyDrift-v3", "--env-entry-point", "neuroevo_user_pkg.envs:Drift",
                 "--set", "env.max_steps=15", "--policy-module", "neuroevo_user_pkg.nets:TinyNet",
                 "--algo", "ars", "--generations", "1", "--out", str(run), "--quiet"]) == 0
    trainer = neuroevo.Trainer.resume(run)
    ours = evaluate_checkpoint(run, episodes=3)["returns"]
    payload = tmp_path / "worker.pkl"
    payload.write_bytes(pickle.dumps((trainer.envs, trainer.policy)))  # what a Ray worker is sent
    script = (
        "import pickle, sys, gymnasium as gym; from neuroevo.playback import evaluate_checkpoint\n"
        "assert 'MyDrift-v3' not in gym.registry\n"
        f"envs, policy = pickle.loads(open({str(payload)!r}, 'rb').read())\n"
        "env = envs(2); print(env.obs_dim, env.max_episode_steps, policy.num_params)\n"
        f"print(evaluate_checkpoint({str(run)!r}, episodes=3)['returns'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(DATA)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first == f"1 None {trainer.policy.num_params}"
    assert second == str(ours)


class OutputFirst(nn.Module):
    """Registers its output layer first: the first nn.Linear's in_features (8) is not the obs size (5)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.body = nn.Linear(5, 8)

    def forward(self, obs):
        return self.head(self.body(obs).relu())


def test_module_policy_infers_obs_dim_by_a_dry_forward():
    policy = ModulePolicy(OutputFirst())
    assert (policy.obs_dim, policy.act_dim) == (5, 2)

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 2, 3)

        def forward(self, obs):
            return self.conv(obs[:, None]).flatten(1)

    with pytest.raises(ValueError, match=r"cannot infer obs_dim of Conv; pass it: ModulePolicy\(module, obs_dim"):
        ModulePolicy(Conv())
    assert ModulePolicy(Conv(), obs_dim=5).act_dim == 6


def test_a_module_passed_as_an_object_resumes_and_evaluates_when_passed_again(tmp_path, capsys):
    config = neuroevo.resolve_config("CartPole-v1", {"run": {"algo": "ga", "generations": 1}})
    torch.manual_seed(0)
    neuroevo.Trainer(config, tmp_path / "run", policy=ModulePolicy(OutputFirst4())).run()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["policy"]["kind"] == "module"
    with pytest.raises(ValueError, match=r"passed again: Trainer.resume\(run_dir, policy=ModulePolicy\(MyNet"):
        neuroevo.Trainer.resume(tmp_path / "run")
    assert main(["train", "--resume", str(tmp_path / "run"), "--generations", "2"]) == 2
    assert "policy.module is not set: name your nn.Module class" in capsys.readouterr().err
    again = ModulePolicy(OutputFirst4())
    trainer = neuroevo.Trainer.resume(tmp_path / "run", {"run": {"generations": 2}}, policy=again)
    assert trainer.run().generations == 2
    with pytest.raises(ValueError, match=r"the checkpoint's policy \(module, 58 parameters\) is not this trainer's"):
        neuroevo.Trainer.resume(tmp_path / "run", policy=ModulePolicy(nn.Linear(4, 2)))
    summary = evaluate_checkpoint(tmp_path / "run", episodes=2, module=OutputFirst4())
    assert len(summary["returns"]) == 2


class OutputFirst4(nn.Module):
    """CartPole's 4 observations to 2 logits, output layer registered first."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.body = nn.Linear(4, 8)

    def forward(self, obs):
        return self.head(self.body(obs).tanh())


def test_env_id_with_a_module_that_does_not_register_it_is_a_one_line_error(tmp_path, capsys):
    out = ["--generations", "1", "--out", str(tmp_path / "r")]
    assert main(["train", "--env", "neuroevo_user_pkg:NoSuch-v0", *out]) == 2
    assert "importing neuroevo_user_pkg did not register 'NoSuch-v0'" in capsys.readouterr().err
    assert main(["train", "--env", "no_such_pkg:X-v0", *out]) == 2
    assert "cannot import 'no_such_pkg'" in capsys.readouterr().err
    assert "Drift-v0" in gym.registry

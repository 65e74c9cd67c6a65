"""A new optimizer is one class plus one registry entry: a toy defined in this file alone trains through the
Trainer from a config (its section named after it) and through the CLI."""

import json
from dataclasses import dataclass

import pytest
import torch

import neuroevo
from neuroevo.algorithms import ALGORITHMS, Optimizer, OptimizerConfig, register_optimizer
from neuroevo.cli import main


@dataclass
class ToyConfig(OptimizerConfig):
    popsize: int = 8
    sigma: float = 0.5
    keep: float = 0.5
    """how much of the old center stays when it moves toward the best member"""


class Toy(Optimizer):
    """Gaussian samples around the center; the center moves toward the generation's best member."""

    config_class = ToyConfig
    name = "Toy"

    def _ask(self):
        noise = torch.randn(self.popsize, self.num_params, generator=self.generator).to(self.device)
        return self.center + self.config.sigma * noise

    def _tell(self, params, fitness):
        self.center = self.config.keep * self.center + (1 - self.config.keep) * params[int(fitness.argmax())]
        return {"train/toy_moved": 1.0}


@pytest.fixture
def toy():
    register_optimizer("toy", Toy)
    yield
    del ALGORITHMS["toy"]


def test_a_registered_toy_trains_through_the_trainer_from_its_config_section(toy):
    config = neuroevo.resolve_config("CartPole-v1", {
        "run": {"algo": "toy", "generations": 3, "target": None, "device": "cpu", "eval_episodes": 2},
        "toy": {"popsize": 6, "keep": 0.25},
        "env": {"max_steps": 50},
    })
    assert config.toy.keep == 0.25 and config.to_dict()["toy"]["popsize"] == 6
    result = neuroevo.Trainer(config).run()
    assert result.generations == 3 and result.history[-1]["train/toy_moved"] == 1.0
    assert result.env_steps > 0 and result.best_eval_return > 0


def test_a_registered_toy_trains_through_the_cli_with_typed_overrides(toy, tmp_path, capsys):
    out = tmp_path / "toy"
    code = main(["train", "--env", "CartPole-v1", "--algo", "toy", "--generations", "2", "--popsize", "4",
                 "--set", "toy.keep=0.9", "--set", "env.max_steps=30", "--device", "cpu", "--out", str(out),
                 "--quiet"])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["run"]["algo"] == "toy" and saved["toy"] == {"popsize": 4, "sigma": 0.5, "keep": 0.9}
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    code = main(["train", "--env", "CartPole-v1", "--algo", "toy", "--set", "toy.popsize=1.5", "--out",
                 str(tmp_path / "bad"), "--quiet"])
    assert code != 0 and "toy.popsize must be int, got 1.5" in capsys.readouterr().err


def test_registration_refuses_what_would_break_the_config():
    with pytest.raises(ValueError, match="registered as 'es' already"):
        register_optimizer("es", Toy)
    with pytest.raises(ValueError, match="config section of its own"):
        register_optimizer("run", Toy)
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_optimizer("My-Toy", Toy)
    with pytest.raises(ValueError, match="not an Optimizer subclass"):
        register_optimizer("thing", dict)

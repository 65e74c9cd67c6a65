"""pycma's conveniences on every registered optimizer: ``optimize(fitness_fn, ...)`` and ``stop()``."""

import pytest
import torch
from objectives import sphere
from test_optimizers import SMALL

from neuroevo.algorithms import ALGORITHMS, CMAES, ES, make_optimizer


def loss(x):
    """A loss (minimized) with its minimum 0 at x = 1."""
    return ((x - 1.0) ** 2).sum(-1)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_optimize_runs_its_generations_and_reports_the_best_in_the_losss_own_sign(algo):
    opt = make_optimizer(algo, torch.zeros(4), seed=0, **SMALL[algo])
    seen = []

    def recording_loss(x):
        values = loss(x)
        seen.append(values.min())
        return values

    result = opt.optimize(recording_loss, generations=4, minimize=True)
    assert result.generations == 4 == opt.generation and result.stopped == {"generations": 4}
    assert len(result.history) == 4 and result.best.shape == (4,)
    assert result.best_value == pytest.approx(float(min(seen)))  # a loss, not its negation
    assert float(loss(result.best)) == pytest.approx(result.best_value)
    assert opt.stop() == {"generations": 4}


def test_three_lines_of_black_box_minimization():
    opt = CMAES(torch.zeros(5), sigma=0.5, seed=1)
    result = opt.optimize(loss, generations=300, minimize=True, target=1e-6)
    assert result.stopped.keys() == {"target"} and result.best_value <= 1e-6
    assert torch.allclose(result.best, torch.ones(5), atol=1e-2)


def test_a_target_and_a_callback_stop_the_run():
    result = ES(torch.zeros(3), popsize=20, sigma=0.1, lr=0.1, seed=0).optimize(sphere, generations=500, target=-0.5)
    assert "target" in result.stopped and result.best_value >= -0.5 and result.generations < 500
    calls = []

    def three_generations(optimizer, metrics):
        calls.append(metrics)
        return len(calls) == 3

    result = ES(torch.zeros(3), popsize=20, seed=0).optimize(sphere, 50, callback=three_generations)
    assert result.generations == 3 and result.stopped == {"callback": True}


def test_optimize_refuses_what_would_not_stop_or_does_not_fit():
    opt = ES(torch.zeros(3), popsize=4)
    with pytest.raises(ValueError, match="needs generations or a target"):
        opt.optimize(sphere)
    with pytest.raises(ValueError, match=r"one value per member, shape \(4,\); got \(4, 3\)"):
        opt.optimize(lambda x: x, generations=1)


def test_stop_reports_a_flat_fitness_and_settings_are_checked_by_name():
    opt = ES(torch.zeros(3), popsize=4)
    opt.ask()
    opt.tell(torch.zeros(4))
    assert opt.stop() == {"flat_fitness": 0.0}
    opt.stop_criteria.flat_fitness = False
    assert opt.stop() == {}
    with pytest.raises(ValueError, match=r"ES: unknown setting 'sigmaa'; known: .*sigma"):
        ES(torch.zeros(3), sigmaa=0.1)

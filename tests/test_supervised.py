"""The supervised population problem and its two trainers (backprop and population optimizers)."""

import pytest
import torch

pytest.importorskip("sklearn")

from neuroevo.supervised import (  # noqa: E402
    Budget,
    Classifiers,
    load_dataset,
    train_backprop,
    train_population,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_datasets_are_split_and_standardized(digits):
    assert digits.num_features == 64 and digits.num_classes == 10
    assert digits.x_train.shape[0] + digits.x_test.shape[0] == 1797
    assert abs(digits.x_test.shape[0] / 1797 - 0.25) < 0.01
    informative = digits.x_train.std(0) > 0
    torch.testing.assert_close(digits.x_train.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    std = digits.x_train.std(0)[informative]
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-4, rtol=0)
    tabular = load_dataset("breast_cancer")
    assert tabular.num_features == 30 and tabular.num_classes == 2


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown data set 'mnist'; choose one of digits, breast_cancer, wine"):
        load_dataset("mnist")


def test_population_losses_equal_torch_cross_entropy_per_member(digits):
    problem = Classifiers(digits, hidden=(16,), batch_size=32)
    params = 0.3 * torch.randn(5, problem.num_params, generator=torch.Generator().manual_seed(0))
    x, y = problem.batch(torch.Generator().manual_seed(1))
    losses = problem.losses(params, x, y)
    for p in range(5):
        logits = problem.net.to_module(params[p])(x)
        torch.testing.assert_close(losses[p], torch.nn.functional.cross_entropy(logits, y))


def test_batches_are_drawn_without_replacement(digits):
    problem = Classifiers(digits, batch_size=64)
    x, y = problem.batch(torch.Generator().manual_seed(0))
    assert x.shape == (64, 64) and y.shape == (64,)
    assert torch.unique(x, dim=0).shape[0] == 64


def test_backprop_learns_digits(digits):
    problem = Classifiers(digits, hidden=(32,), batch_size=64)
    rows = train_backprop(problem, Budget(forwards=64 * 300, seconds=60.0, log_every=100), seed=0, lr=3e-3)
    assert rows[0]["test_accuracy"] < 0.3  # chance is 0.1
    assert rows[-1]["test_accuracy"] > 0.85
    assert rows[-1]["forwards"] == 64 * 300


def test_population_optimizer_learns_and_counts_forward_passes(digits):
    problem = Classifiers(digits, hidden=(16,), batch_size=64)
    budget = Budget(forwards=64 * 64 * 40, seconds=60.0, log_every=10)
    rows = train_population(problem, "es", budget, seed=0, popsize=64, sigma=0.05, lr=0.03, weight_decay=0.0)
    assert rows[-1]["forwards"] == 64 * 64 * 40  # P x batch per generation, 40 generations
    assert [r["iteration"] for r in rows][:6] == [0, 1, 2, 4, 8, 10]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.5
    assert rows[-1]["test_accuracy"] > 0.5

"""Supervised neuroevolution: a population of classifiers trained on minibatches, against backprop.

The population is the same ``[P, D]`` tensor as in RL and the network the same :class:`MLP` policy: one
batched call gives every member's logits on a minibatch, and a member's fitness is minus its mean
cross-entropy on that batch (every member sees the same batch in a generation, so their fitness values
are comparable). The reference trains the same network with Adam through autograd, on the same
function. Both are run under a budget of forward passes (one example through the network once) and of
wall-clock seconds, and both log the same rows, so a study can read them side by side.

Data sets ship inside scikit-learn (no downloads): ``digits`` (8x8 images, 1,797 examples, 10 classes)
and the tabular ``breast_cancer`` (569 examples, 30 features, 2 classes) and ``wine`` (178, 13, 3); and
``classification``, a seeded ``sklearn.datasets.make_classification`` set of 100,000 examples, 256 features
and 10 classes, for networks of 1M+ parameters (scikit-learn ships nothing that large). Features are
standardized with the training split's statistics; the split is stratified, 25% test.

EGGROLL's members are evaluated in their low-rank form (``population.members``): the classifiers' forward
never builds a [P, D] population.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from neuroevo.algorithms import Optimizer, make_optimizer
from neuroevo.policies import MLP
from neuroevo.policies.lowrank import Params

DATASETS = ("digits", "breast_cancer", "wine", "classification")
#: ``make_classification``'s arguments for the ``classification`` set (its seed is fixed: the data never change)
CLASSIFICATION = {"n_samples": 100_000, "n_features": 256, "n_informative": 64, "n_redundant": 64,
                  "n_classes": 10, "n_clusters_per_class": 2, "random_state": 0}


@dataclass
class Dataset:
    """x_*: [N, features] float32, y_*: [N] int64."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def load_dataset(name: str, seed: int = 0, device=None) -> Dataset:
    """One of :data:`DATASETS`, split 75/25 (stratified, by ``seed``) and standardized."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    try:
        from sklearn import datasets, model_selection
    except ImportError:
        raise ValueError("the supervised study needs scikit-learn: pip install 'neuroevo[study]'") from None
    if name == "classification":
        x, y = datasets.make_classification(**CLASSIFICATION)
    else:
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=seed
    )
    x_train, x_test = (torch.as_tensor(a, dtype=torch.float32) for a in (x_train, x_test))
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    to = dict(device=device)
    return Dataset(
        name,
        ((x_train - mean) / std).to(**to),
        torch.as_tensor(y_train, dtype=torch.int64, **to),
        ((x_test - mean) / std).to(**to),
        torch.as_tensor(y_test, dtype=torch.int64, **to),
        int(y.max()) + 1,
    )


class Classifiers:
    """A population of MLP classifiers on one data set.

    Args:
        data: the data set.
        hidden: hidden layer sizes of the MLP (tanh); ``num_params`` follows.
        batch_size: examples per minibatch (every member gets the same batch in one call).
    """

    def __init__(self, data: Dataset, hidden: tuple[int, ...] = (128,), batch_size: int = 64):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.net = MLP(obs_dim=data.num_features, act_dim=data.num_classes, hidden=tuple(hidden), activation="tanh")

    @property
    def num_params(self) -> int:
        return self.net.num_params

    def batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A minibatch of the training split: x [B, features], y [B], drawn without replacement."""
        n = self.data.x_train.shape[0]
        index = torch.randperm(n, generator=generator)[: self.batch_size].to(self.data.x_train.device)
        return self.data.x_train[index], self.data.y_train[index]

    def losses(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy [P] of every member of params [P, D] (or low-rank members) on x [B, features],
        y [B]."""
        logits = self.net(params, x.expand(params.shape[0], *x.shape))  # [P, B, classes]
        log_p = torch.log_softmax(logits, dim=-1)
        return -log_p.gather(-1, y.expand(params.shape[0], -1)[..., None]).squeeze(-1).mean(-1)

    @torch.no_grad()
    def score(self, flat: Tensor, split: str = "test") -> tuple[float, float]:
        """(mean cross-entropy, accuracy) of one member flat [D] on the whole ``split``."""
        x, y = (self.data.x_test, self.data.y_test) if split == "test" else (self.data.x_train, self.data.y_train)
        logits = self.net(flat[None], x[None])[0]
        loss = torch.nn.functional.cross_entropy(logits, y)
        return float(loss), float((logits.argmax(-1) == y).float().mean())


@dataclass
class Budget:
    """Stop at whichever comes first: ``forwards`` (examples through the network, summed over members)
    or ``seconds`` of training time on ``clock`` (evaluations of the solution are not counted)."""

    forwards: int
    seconds: float
    clock: Callable[[], float] = time.perf_counter
    """wall clock by default; ``time.process_time`` (this process's CPU time) compares methods fairly on a
    machine shared with other work, and equals the wall clock of a single-threaded run on an idle one"""
    log_every: int = 10
    """iterations (generations, or Adam steps) between logged rows (and rows at iterations 1, 2, 4, 8, ...,
    so that the first generations of a population method, thousands of forward passes each, show)"""


def _log(problem: Classifiers, flat: Tensor, it: int, forwards: int, seconds: float, batch_loss: float) -> dict:
    test_loss, test_acc = problem.score(flat, "test")
    train_loss, _ = problem.score(flat, "train")
    return {
        "iteration": it,
        "forwards": forwards,
        "seconds": seconds,
        "batch_loss": batch_loss,
        "train_loss": train_loss,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
    }


def _run(
    problem: Classifiers, budget: Budget, step: Callable[[], tuple[int, float]], solution: Callable[[], Tensor]
) -> list[dict]:
    """Call ``step() -> (forwards, batch loss)`` until the budget is spent; logs rows (see :class:`Budget`)."""
    rows = [_log(problem, solution(), 0, 0, 0.0, float("nan"))]
    forwards, seconds, it = 0, 0.0, 0
    while forwards < budget.forwards and seconds < budget.seconds:
        start = budget.clock()
        used, batch_loss = step()
        seconds += budget.clock() - start
        forwards += used
        it += 1
        if it % budget.log_every == 0 or it & (it - 1) == 0:
            rows.append(_log(problem, solution(), it, forwards, seconds, batch_loss))
    if rows[-1]["iteration"] != it:
        rows.append(_log(problem, solution(), it, forwards, seconds, batch_loss))
    return rows


def train_backprop(problem: Classifiers, budget: Budget, seed: int = 0, lr: float = 1e-3) -> list[dict]:
    """The reference: Adam (Kingma and Ba 2015, default betas) on the minibatch cross-entropy through
    autograd, from the same initial parameters the population methods start from. A step counts
    ``batch_size`` forward passes (its backward pass, about two more, is not counted: see the seconds)."""
    generator = torch.Generator().manual_seed(seed)
    params = problem.net.init_params(generator).to(problem.data.x_train.device).requires_grad_(True)
    adam = torch.optim.Adam([params], lr=lr)

    def step() -> tuple[int, float]:
        x, y = problem.batch(generator)
        loss = problem.losses(params[None], x, y)[0]
        adam.zero_grad()
        loss.backward()
        adam.step()
        return problem.batch_size, float(loss.detach())

    return _run(problem, budget, step, lambda: params.detach())


def train_population(
    problem: Classifiers, algo: str, budget: Budget, seed: int = 0, **hyperparameters
) -> list[dict]:
    """A population optimizer (a key of ``neuroevo.algorithms.ALGORITHMS``) minimizing the minibatch
    cross-entropy, ask / tell on the members in the form the network's batched forward takes (EGGROLL's stay
    low-rank); a generation counts P x batch_size forward passes. The logged solution is the optimizer's
    ``center``; rows are logged as :func:`_run` logs them, and the logging's own evaluations are not counted in
    the seconds."""
    generator = torch.Generator().manual_seed(seed)
    center = problem.net.init_params(generator).to(problem.data.x_train.device)
    optimizer = make_optimizer(algo, center, seed=seed, layout=problem.net.param_layout(), **hyperparameters)
    rows = [_log(problem, optimizer.center, 0, 0, 0.0, float("nan"))]
    spent: dict[str, Any] = {"forwards": 0, "seconds": 0.0, "since": budget.clock()}

    def loss(params: Params) -> Tensor:
        x, y = problem.batch(generator)
        return problem.losses(params, x, y)

    def after_generation(opt, metrics: dict[str, float]) -> bool:
        spent["seconds"] += budget.clock() - spent["since"]
        spent["forwards"] += opt.popsize * problem.batch_size
        it = opt.generation
        if it % budget.log_every == 0 or it & (it - 1) == 0:
            batch_loss = -metrics["train/fitness_max"]  # the best member's loss on this generation's batch
            rows.append(_log(problem, opt.center, it, spent["forwards"], spent["seconds"], batch_loss))
        spent["since"] = budget.clock()
        return spent["forwards"] >= budget.forwards or spent["seconds"] >= budget.seconds

    generations = math.ceil(budget.forwards / (optimizer.popsize * problem.batch_size))  # the forward budget's
    optimizer.stop_criteria.generations = generations
    metrics: dict[str, float] = {}
    with torch.no_grad():
        while not optimizer.stop():
            metrics = optimizer.tell(-loss(members(optimizer)))
            if after_generation(optimizer, metrics):
                break
    if rows[-1]["iteration"] != optimizer.generation:
        batch_loss = -metrics["train/fitness_max"] if metrics else float("nan")
        rows.append(_log(problem, optimizer.center, optimizer.generation, spent["forwards"], spent["seconds"],
                         batch_loss))
    return rows


def members(optimizer: Optimizer) -> Params:
    """The optimizer's next population (``ask_population``) in the form a policy's batched forward takes:
    params [P, D], or EGGROLL's members in low-rank form (never [P, D])."""
    population = optimizer.ask_population()
    noise = getattr(optimizer, "noise", None)
    return population if isinstance(population, Tensor) else population.members(noise)

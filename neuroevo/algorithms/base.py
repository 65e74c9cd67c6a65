"""What every optimizer shares: the ask/tell contract, fitness hygiene, best-so-far and state.

All optimizers maximize. They work on flat parameter tensors on any torch device:
``ask() -> params [P, D]``, evaluate, ``tell(fitness [P]) -> metrics``. Subclasses implement
``_ask`` (returning a compact :class:`Population`) and ``_tell`` only.

``ask_population()`` gives the same generation without building the [P, D] tensor: a
:class:`Population` names every member by a base row, a noise offset and a sign, and
:func:`materialize` rebuilds any rows of it, bit for bit, in any process holding the same noise table.
That is what a distributed evaluator ships instead of parameter vectors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from neuroevo.algorithms.noise import DEFAULT_SIZE, NoiseTable
from neuroevo.seeding import derive_seed


@dataclass
class OptimizerConfig:
    """Settings every optimizer has; each algorithm's config extends it (and may change defaults)."""

    popsize: int = 256
    """members per generation"""
    sigma: float = 0.02
    """standard deviation of the Gaussian parameter perturbations"""
    noise_size: int = DEFAULT_SIZE
    """floats in the shared noise table"""
    noise_seed: int = 0
    """seed of the shared noise table (the same for every run, so that processes share it)"""


def centered_ranks(fitness: torch.Tensor) -> torch.Tensor:
    """Fitness shaping of Salimans et al. (2017): ranks mapped linearly onto [-0.5, 0.5], [P] float32."""
    p = fitness.numel()
    ranks = torch.empty(p, dtype=torch.float32, device=fitness.device)
    ranks[fitness.argsort()] = torch.arange(p, dtype=torch.float32, device=fitness.device)
    return ranks / max(p - 1, 1) - 0.5


@dataclass
class Population:
    """One generation's population, compactly: what a process holding the same noise table needs to
    rebuild any of its rows with :func:`materialize`, instead of the [P, D] tensor itself.

    Member r is ``bases[base_index[r]] + signs[r] * (sigma * noise[offsets[r] : offsets[r] + D])``, or the
    base row unchanged where ``signs[r] == 0``. ES and ARS: ``bases`` is the center [1, D], the P/2
    offsets appear twice, signs +1 then -1. GA: ``bases`` is the elites [C, D] then the parents [T, D];
    elites have sign 0, a child is (parent, offset) with sign +1.

    bases: [B, D] float on the optimizer's device; base_index, offsets: [P] int64 and signs: [P] int8,
    on the CPU. ``noise_seed`` and ``noise_size`` name the :class:`NoiseTable`.
    """

    bases: torch.Tensor
    base_index: torch.Tensor
    offsets: torch.Tensor
    signs: torch.Tensor
    sigma: float
    noise_seed: int
    noise_size: int

    def __len__(self) -> int:
        return self.base_index.numel()

    @property
    def num_params(self) -> int:
        return self.bases.shape[1]

    @classmethod
    def dense(cls, params: torch.Tensor, noise: NoiseTable, sigma: float = 0.0) -> Population:
        """Rows that have no compact form (params [P, D]): each member is its own base, unmutated."""
        popsize = params.shape[0]
        zeros = torch.zeros(popsize, dtype=torch.int64)
        return cls(params, torch.arange(popsize), zeros, zeros.to(torch.int8), sigma, noise.seed, noise.size)


def gather_rows(population: Population, noise: NoiseTable, index: torch.Tensor) -> torch.Tensor:
    """The members ``index`` [n] (int64) of ``population``: params [n, D] on the noise table's device."""
    index = torch.as_tensor(index, dtype=torch.int64).reshape(-1).cpu()
    device = noise.device
    base = population.bases.to(device)[population.base_index[index].to(device)]
    signs = population.signs[index]
    mutated = signs != 0
    if not bool(mutated.any()):
        return base
    # The same expression ask() has always evaluated: center + sigma * eps, center + -(sigma * eps).
    eps = noise.get(torch.where(mutated, population.offsets[index], 0), population.num_params)
    step = population.sigma * eps
    rows = base + step * signs.to(device=device, dtype=step.dtype)[:, None]
    return rows if bool(mutated.all()) else torch.where(mutated.to(device)[:, None], rows, base)


def materialize(population: Population, noise: NoiseTable, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Rows [start, stop) of the population (default: all): params [stop - start, D] on the noise
    table's device, bit-identical to the same rows of the optimizer's ``ask()``."""
    stop = len(population) if stop is None else stop
    return gather_rows(population, noise, torch.arange(start, stop))


class _PopulationRows:
    """A population's rows built on demand: what ``tell`` indexes when ``ask_population`` built no
    [P, D] tensor (``rows[i]`` -> [D], ``rows[index]`` -> [n, D])."""

    def __init__(self, population: Population, noise: NoiseTable):
        self.population = population
        self.noise = noise

    def __len__(self) -> int:
        return len(self.population)

    def __getitem__(self, index) -> torch.Tensor:
        index = torch.as_tensor(index)
        rows = gather_rows(self.population, self.noise, index)
        return rows[0] if index.ndim == 0 else rows


def _state_value(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


class Optimizer:
    """Base of every population optimizer.

    Args:
        center: the starting point, a tensor [D] (or an int D for zeros). Its device and float dtype
            are the optimizer's.
        config: the algorithm's config dataclass (``ESConfig``, ...); keyword arguments override its
            fields: ``ES(center, popsize=64, sigma=0.05)``.
        seed: the optimizer's random draws (noise offsets, parent choice) in generation g come from a
            generator seeded with ``derive_seed(seed, g)``: two optimizers with the same seed produce
            the same populations from the same fitness, and a restored state continues identically.
    """

    config_class: type
    name: str

    def __init__(self, center: torch.Tensor | int, config=None, *, seed: int = 0, device=None, **overrides):
        config = config if config is not None else self.config_class()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self._validate_config()
        if isinstance(center, int):
            center = torch.zeros(center, device=device)
        center = torch.as_tensor(center)
        if device is not None:
            center = center.to(device)
        if center.ndim != 1 or center.numel() == 0:
            raise ValueError(f"center must be a non-empty 1-D tensor [D], got shape {tuple(center.shape)}")
        self.center = center.detach().clone().float()
        self.num_params = self.center.numel()
        self.device = self.center.device
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.noise = NoiseTable(self.config.noise_seed, self.config.noise_size, self.device)
        self.noise.check_dim(self.num_params)
        self.generation = 0
        self.best_fitness = float("-inf")
        self.best = self.center.clone()
        self._pending: torch.Tensor | Population | None = None

    # -- contract --------------------------------------------------------------------------------
    @property
    def popsize(self) -> int:
        return self.config.popsize

    def ask(self) -> torch.Tensor:
        """The population to evaluate next: params [P, D] on the optimizer's device."""
        params = materialize(self.ask_population(), self.noise)
        self._pending = params
        return params

    def ask_population(self) -> Population:
        """The population to evaluate next in compact form (no [P, D] tensor is built; ``tell``
        rebuilds only the rows it keeps). ``materialize(population, optimizer.noise)`` equals ``ask()``."""
        # A fresh stream per generation: draws never depend on what an interrupted generation consumed.
        self.generator.manual_seed(derive_seed(self.seed, self.generation))
        population = self._ask()
        if isinstance(population, torch.Tensor):  # an optimizer without a compact form
            population = Population.dense(population, self.noise, self.config.sigma)
        self._pending = population
        return population

    def tell(self, fitness: torch.Tensor) -> dict[str, float]:
        """Update from the fitness [P] of the last ``ask()``; returns ``train/...`` metrics."""
        if self._pending is None:
            raise RuntimeError(f"{self.name}.tell() called without a preceding ask()")
        fitness = torch.as_tensor(fitness, dtype=torch.float32).to(self.device).reshape(-1)
        if fitness.numel() != len(self._pending):
            raise ValueError(
                f"{self.name}.tell() got {fitness.numel()} fitness values for a population of {len(self._pending)}"
            )
        fitness, nonfinite = sanitize_fitness(fitness)
        params, self._pending = self._pending, None
        if isinstance(params, Population):
            params = _PopulationRows(params, self.noise)
        top = int(fitness.argmax())
        if fitness[top] > self.best_fitness:
            self.best_fitness = float(fitness[top])
            self.best = params[top].clone()
        metrics = self._tell(params, fitness)
        self.generation += 1
        return {
            "train/fitness_mean": float(fitness.mean()),
            "train/fitness_max": float(fitness.max()),
            "train/fitness_min": float(fitness.min()),
            "train/best_fitness": self.best_fitness,
            "train/nonfinite_fitness": nonfinite,
            **metrics,
        }

    # -- subclasses ------------------------------------------------------------------------------
    def _validate_config(self) -> None:
        c = self.config
        if c.popsize <= 0:
            raise ValueError(f"{self.name}: popsize must be positive, got {c.popsize}")
        if c.sigma <= 0:
            raise ValueError(f"{self.name}: sigma must be positive, got {c.sigma}")

    def _ask(self) -> Population:
        """This generation's population (draws from ``self.generator``); a [P, D] tensor also works."""
        raise NotImplementedError

    def _tell(self, params: torch.Tensor, fitness: torch.Tensor) -> dict[str, float]:
        """Update from ``fitness`` [P]; ``params[index]`` gives members' rows ([P, D] or built on demand)."""
        raise NotImplementedError

    def _population(self, bases, base_index, offsets, signs) -> Population:
        """A :class:`Population` over this optimizer's noise table and sigma."""
        return Population(bases, base_index, offsets, signs.to(torch.int8), self.config.sigma, self.noise.seed,
                          self.noise.size)

    # -- state ----------------------------------------------------------------------------------
    _state_keys: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: plain tensors and numbers (``weights_only`` safe)."""
        state = {
            "name": self.name,
            "config": dataclasses.asdict(self.config),
            "center": self.center.clone(),
            "best": self.best.clone(),
            "best_fitness": self.best_fitness,
            "generation": self.generation,
            "seed": self.seed,
        }
        for key in self._state_keys:
            state[key] = _state_value(getattr(self, key))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of a {state.get('name')!r} optimizer cannot be loaded into {self.name}")
        if state["center"].shape != self.center.shape:
            raise ValueError(
                f"{self.name}: saved center has {state['center'].numel()} parameters, "
                f"this optimizer has {self.num_params}"
            )
        self.config = self.config_class(**state["config"])
        self.center = state["center"].to(self.device).clone()
        self.best = state["best"].to(self.device).clone()
        self.best_fitness = float(state["best_fitness"])
        self.generation = int(state["generation"])
        self.seed = int(state["seed"])
        for key in self._state_keys:
            value = state[key]
            setattr(self, key, value.to(self.device).clone() if isinstance(value, torch.Tensor) else value)
        self._pending = None


class MirroredOptimizer(Optimizer):
    """Base of the optimizers that sample antithetic pairs (ES, ARS): P/2 perturbations eps_i, member
    i is center + sigma * eps_i and member i + P/2 is center - sigma * eps_i; ``offsets`` [P/2] name the
    eps_i in the noise table. Their configs have ``lr``."""

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.offsets = torch.empty(0, dtype=torch.int64)

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.popsize < 2 or c.popsize % 2:
            raise ValueError(f"{self.name}: popsize must be even (antithetic pairs), got {c.popsize}")
        if c.lr <= 0:
            raise ValueError(f"{self.name}: lr must be positive, got {c.lr}")

    def _ask(self) -> Population:
        half = self.popsize // 2
        self.offsets = self.noise.sample_offsets(half, self.num_params, self.generator)
        signs = torch.cat([torch.ones(half), -torch.ones(half)])
        return self._population(self.center[None], torch.zeros(self.popsize, dtype=torch.int64),
                                self.offsets.repeat(2), signs)


def sanitize_fitness(fitness: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rank NaN and infinite fitness last. Returns (fitness, count of non-finite values).

    A non-finite value becomes the float just below the worst finite one: last in every ranking, and
    no outlier in the raw-value arithmetic of ARS.
    """
    finite = torch.isfinite(fitness)
    nonfinite = int((~finite).sum())
    if nonfinite == 0:
        return fitness, 0
    if nonfinite == fitness.numel():
        raise ValueError(f"all {fitness.numel()} fitness values are NaN or infinite; check the env's rewards")
    worst = torch.nextafter(fitness[finite].min(), fitness.new_tensor(float("-inf")))
    return torch.where(finite, fitness, worst), nonfinite

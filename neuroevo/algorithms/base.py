"""What every optimizer shares: the ask/tell contract, fitness hygiene, best-so-far and state.

All optimizers maximize. They work on flat parameter tensors on any torch device:
``ask() -> params [P, D]``, evaluate, ``tell(fitness [P]) -> metrics``. Subclasses implement
``_ask`` and ``_tell`` only.
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
        self._pending: torch.Tensor | None = None

    # -- contract --------------------------------------------------------------------------------
    @property
    def popsize(self) -> int:
        return self.config.popsize

    def ask(self) -> torch.Tensor:
        """The population to evaluate next: params [P, D] on the optimizer's device."""
        # A fresh stream per generation: draws never depend on what an interrupted generation consumed.
        self.generator.manual_seed(derive_seed(self.seed, self.generation))
        params = self._ask()
        self._pending = params
        return params

    def tell(self, fitness: torch.Tensor) -> dict[str, float]:
        """Update from the fitness [P] of the last ``ask()``; returns ``train/...`` metrics."""
        if self._pending is None:
            raise RuntimeError(f"{self.name}.tell() called without a preceding ask()")
        fitness = torch.as_tensor(fitness, dtype=torch.float32).to(self.device).reshape(-1)
        if fitness.numel() != self._pending.shape[0]:
            raise ValueError(
                f"{self.name}.tell() got {fitness.numel()} fitness values for a population of "
                f"{self._pending.shape[0]}"
            )
        fitness, nonfinite = sanitize_fitness(fitness)
        params, self._pending = self._pending, None
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

    def _ask(self) -> torch.Tensor:
        raise NotImplementedError

    def _tell(self, params: torch.Tensor, fitness: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def _perturbations(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fresh offsets [n] (CPU) and their noise [n, D] on the device."""
        offsets = self.noise.sample_offsets(n, self.num_params, self.generator)
        return offsets, self.noise.get(offsets, self.num_params)

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

    def _ask(self) -> torch.Tensor:
        self.offsets, eps = self._perturbations(self.popsize // 2)
        step = self.config.sigma * eps
        return torch.cat([self.center + step, self.center - step])


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

"""What every optimizer shares: the ask/tell contract, fitness hygiene, best-so-far, state, and pycma's
``optimize`` / ``stop`` conveniences.

All optimizers maximize. They work on flat parameter tensors on any torch device:
``ask() -> params [P, D]``, evaluate, ``tell(fitness [P]) -> metrics``. Subclasses implement ``_ask``
(returning params [P, D]) and ``_tell`` only. Optimizers whose members are named by noise-table offsets
(ES, ARS, GA, the chains, random search) share :class:`~neuroevo.algorithms.population.NoiseTableOptimizer`,
which owns the table and gives the compact :class:`~neuroevo.algorithms.population.Population` that a
distributed evaluator ships instead of parameter vectors.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from neuroevo.seeding import derive_seed


@dataclass
class OptimizerConfig:
    """Settings every optimizer has; each algorithm's config extends it (and may change defaults)."""

    popsize: int = 256
    """members per generation"""
    sigma: float = 0.02
    """standard deviation of the Gaussian parameter perturbations"""


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
    #: whether the constructor takes ``layout=`` (the policy's ``param_layout()``); ``make_optimizer`` passes
    #: a layout on only to these
    takes_layout: bool = False
    #: whether the constructor takes ``init_scale=`` (the policy's init std per parameter, for random starting
    #: points: GA, random search); ``make_optimizer`` passes one on only to these
    takes_init_scale: bool = False
    #: whether the optimizer names its members by genomes (:meth:`center_genome`, :meth:`genome_params`; the GA
    #: and random search), so that a checkpoint of it holds no parameter vector at all
    has_genomes: bool = False

    def __init__(self, center: torch.Tensor | int, config: Any = None, *, seed: int = 0,
                 device: torch.device | str | None = None, **overrides: Any):
        config = config if config is not None else self.config_class()
        if overrides:
            config = dataclasses.replace(config, **_current_names(self.config_class, overrides, self.name))
        self.config = config
        self._validate_config()
        if isinstance(center, int):
            center = torch.zeros(center, device=device)
        center = torch.as_tensor(center)
        if device is not None:
            center = center.to(device)
        if center.ndim != 1 or center.numel() == 0:
            raise ValueError(f"center must be a non-empty 1-D tensor [D], got shape {tuple(center.shape)}")
        if not center.is_floating_point():  # integer start values: the default float dtype
            center = center.to(torch.get_default_dtype())
        self.center = center.detach().clone()
        self.num_params = self.center.numel()
        self.device = self.center.device
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generation = 0
        self.best_fitness = float("-inf")
        self.best = self.center.clone()
        self._pending: Any = None
        self._stop = StopCriteria()
        self._last_fitness: torch.Tensor | None = None

    # -- contract --------------------------------------------------------------------------------
    @property
    def popsize(self) -> int:
        return self.config.popsize

    def ask(self) -> torch.Tensor:
        """The population to evaluate next: params [P, D] on the optimizer's device."""
        params = self._rows(self.ask_population())
        self._pending = params
        return params

    def ask_population(self) -> Any:
        """The population to evaluate next in its most compact form: params [P, D] here; noise-table
        optimizers name their members by offsets (:class:`~neuroevo.algorithms.population.Population`), so
        that a distributed evaluator ships O(P) numbers. ``tell`` follows either ``ask``."""
        # A fresh stream per generation: draws never depend on what an interrupted generation consumed.
        self.generator.manual_seed(derive_seed(self.seed, self.generation))
        population = self._ask()
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
        params, self._pending = self._member_rows(self._pending), None
        top = int(fitness.argmax())
        if fitness[top] > self.best_fitness:
            self.best_fitness = float(fitness[top])
            self.best = params[top].clone()
            self._new_best(top)
        metrics = self._tell(params, fitness)
        self.generation += 1
        self._last_fitness = fitness
        return {
            "train/fitness_mean": float(fitness.mean()),
            "train/fitness_max": float(fitness.max()),
            "train/fitness_min": float(fitness.min()),
            "train/best_fitness": self.best_fitness,
            "train/nonfinite_fitness": nonfinite,
            **metrics,
        }

    # -- pycma's conveniences ----------------------------------------------------------------------
    def stop(self) -> dict[str, Any]:
        """The termination criteria met now, by name (empty: go on), as pycma's ``stop()``: ``generations``
        (the budget of :meth:`optimize` or :attr:`stop_criteria` spent), ``target`` (the best fitness reached
        it), ``flat_fitness`` (the last generation's fitness all equal: the population has nothing left to
        rank), and what a subclass adds in :meth:`_stop`."""
        criteria, met = self._stop, dict[str, Any]()
        if criteria.generations is not None and self.generation >= criteria.generations:
            met["generations"] = self.generation
        if criteria.target is not None and self.best_fitness >= criteria.target:
            met["target"] = self.best_fitness
        last = self._last_fitness
        if criteria.flat_fitness and last is not None and last.numel() > 1 and bool((last == last[0]).all()):
            met["flat_fitness"] = float(last[0])
        met.update(self._stop_criteria())
        return met

    @property
    def stop_criteria(self) -> StopCriteria:
        """What :meth:`stop` checks (set by :meth:`optimize`, or by hand for your own ask/tell loop)."""
        return self._stop

    def optimize(
        self,
        fitness_fn: Callable[[torch.Tensor], torch.Tensor],
        generations: int | None = None,
        *,
        minimize: bool = False,
        target: float | None = None,
        callback: Callable[[Optimizer, dict[str, float]], Any] | None = None,
    ) -> OptimizeResult:
        """Ask, evaluate ``fitness_fn`` (params [P, D] -> [P]) and tell, until :meth:`stop` says so.

        Black-box optimization of any torch function in three lines::

            opt = CMAES(torch.zeros(10), sigma=0.5)
            result = opt.optimize(lambda x: (x ** 2).sum(1), generations=200, minimize=True)
            result.best, result.best_value

        Args:
            fitness_fn: maps the population params [P, D] to one value per member [P].
            generations: stop after this many generations in all (counting earlier ones); None: no limit
                (then a ``target`` or a criterion of the optimizer must end the run).
            minimize: ``fitness_fn`` is a loss: the optimizer (which maximizes) is told its negation; the
                result and ``target`` speak in the loss's own sign.
            target: stop once the best value reaches it (a loss at or below it with ``minimize``).
            callback: called with (optimizer, metrics) after every generation; returning True stops.
        """
        if generations is None and target is None:
            raise ValueError(f"{self.name}.optimize needs generations or a target, or it may never stop")
        sign = -1.0 if minimize else 1.0
        self._stop = dataclasses.replace(
            self._stop, generations=generations, target=None if target is None else sign * target
        )
        history: list[dict[str, float]] = []
        stopped: dict[str, Any] = self.stop()
        while not stopped:
            params = self.ask()
            values = torch.as_tensor(fitness_fn(params))
            if values.shape != (params.shape[0],):
                expected, got = (params.shape[0],), tuple(values.shape)
                raise ValueError(f"fitness_fn must return one value per member, shape {expected}; got {got}")
            metrics = self.tell(sign * values)
            history.append(metrics)
            stopped = self.stop()
            if callback is not None and callback(self, metrics) is True:
                stopped = {**stopped, "callback": True}
        return OptimizeResult(self.best.clone(), sign * self.best_fitness, self.center.clone(), self.generation,
                              stopped, history)

    # -- subclasses ------------------------------------------------------------------------------
    def _validate_config(self) -> None:
        c = self.config
        if c.popsize <= 0:
            raise ValueError(f"{self.name}: popsize must be positive, got {c.popsize}")
        if c.sigma <= 0:
            raise ValueError(f"{self.name}: sigma must be positive, got {c.sigma}")

    def _ask(self) -> Any:
        """This generation's population (draws from ``self.generator``): params [P, D] (noise-table optimizers:
        a compact ``Population``)."""
        raise NotImplementedError

    def _tell(self, params: torch.Tensor, fitness: torch.Tensor) -> dict[str, float]:
        """Update from ``fitness`` [P]; ``params[index]`` gives members' rows ([P, D] or built on demand)."""
        raise NotImplementedError

    def _rows(self, population: Any) -> torch.Tensor:
        """The params [P, D] of what ``_ask`` returned (noise-table optimizers build them from offsets)."""
        return population

    def _member_rows(self, pending: Any) -> Any:
        """What ``_tell`` indexes for the pending population: ``rows[i]`` -> [D], ``rows[index]`` -> [n, D]."""
        return pending

    def center_genome(self) -> dict[str, Any] | None:
        """The center named compactly, for a checkpoint to store instead of its D floats: small tensors and
        numbers from which :meth:`genome_params` rebuilds it bit for bit in an optimizer built the same way (the
        GA's and random search's lineages). None (the default): the center has no such name."""
        return None

    def genome_params(self, genome: dict[str, Any]) -> torch.Tensor:
        """The params [D] that :meth:`center_genome` named (at any generation of this run)."""
        raise ValueError(f"{self.name} names no member by a genome")

    def _new_best(self, index: int) -> None:
        """Member ``index`` of the last ``ask`` has just become ``best`` (called by ``tell`` before ``_tell``);
        a subclass that names its members compactly records the name here."""

    def _stop_criteria(self) -> dict[str, Any]:
        """Termination criteria of the algorithm itself (e.g. a collapsed simplex), by name; none here."""
        return {}

    # -- state ----------------------------------------------------------------------------------
    _state_keys: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: plain tensors and numbers (``weights_only`` safe), loadable
        into an optimizer of the same class and size whatever it was built from (a Ray worker's replica)."""
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

    def compact_state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores: only what an optimizer built with the same arguments (center, seed, init
        scale) cannot rebuild itself; ``load_state_dict`` reads it as it reads the full state. The full state
        here; the GA and random search name their members by lineages and leave every D-vector out."""
        return self.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of a {state.get('name')!r} optimizer cannot be loaded into {self.name}")
        if state["center"].shape != self.center.shape:
            raise ValueError(
                f"{self.name}: saved center has {state['center'].numel()} parameters, "
                f"this optimizer has {self.num_params}"
            )
        self.config = self.config_class(**_current_names(self.config_class, state["config"], self.name, loading=True))
        self.center = state["center"].to(self.device).clone()
        self.best = state["best"].to(self.device).clone()
        self.best_fitness = float(state["best_fitness"])
        self.generation = int(state["generation"])
        self.seed = int(state["seed"])
        for key in self._state_keys:
            value = state[key]
            setattr(self, key, value.to(self.device).clone() if isinstance(value, torch.Tensor) else value)
        self._pending = None


@dataclass
class StopCriteria:
    """What :meth:`Optimizer.stop` checks: a generation budget, a target fitness (maximized), and whether a
    generation whose fitness values are all equal stops the run."""

    generations: int | None = None
    target: float | None = None
    flat_fitness: bool = True


@dataclass
class OptimizeResult:
    """What :meth:`Optimizer.optimize` returns: the best member seen and its value (in ``fitness_fn``'s own
    sign), the final center, the generations run in all, the criteria that stopped it, and every
    generation's metrics."""

    best: torch.Tensor
    best_value: float
    center: torch.Tensor
    generations: int
    stopped: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


#: config fields that moved to the noise-table optimizers; states saved before still carry them
_MOVED = ("noise_size", "noise_seed")


def _current_names(config_class: type, values: dict[str, Any], name: str, loading: bool = False) -> dict[str, Any]:
    """``values`` with renamed settings under their current names (``config_class.renamed``: old -> new, with a
    ``DeprecationWarning``), refusing unknown ones with one line; a saved state (``loading``) may still carry
    the settings that moved to the noise-table optimizers, which are dropped."""
    renamed: dict[str, str] = getattr(config_class, "renamed", {})
    names = {f.name for f in dataclasses.fields(config_class)}
    out = {}
    for key, value in values.items():
        if key in renamed:
            if not loading:
                warnings.warn(f"{name}: setting {key} is now {renamed[key]}", DeprecationWarning, stacklevel=4)
            key = renamed[key]
        if key not in names:
            if loading and key in _MOVED:
                continue
            raise ValueError(f"{name}: unknown setting {key!r}; known: {', '.join(sorted(names))}")
        out[key] = value
    return out


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

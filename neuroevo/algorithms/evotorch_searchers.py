"""EvoTorch's distribution-based searchers on neuroevo's evaluator: CMA-ES (and sep-CMA-ES), PGPE with
ClipUp, SNES, XNES and CEM.

The algorithms are EvoTorch's own (``pip install "evotorch>=0.6,<0.7"``), not re-implementations, so that
its maintainers' fixes reach neuroevo's users; these classes only translate between the two ask/tell
contracts. EvoTorch never runs an env: neuroevo evaluates ``ask()``'s population [P, D] and ``tell()``
hands the fitness [P] over. All maximize.

- PGPE and CEM use EvoTorch's functional API (``pgpe``/``pgpe_ask``/``pgpe_tell``, ``cem``/...): the
  search state is a named tuple of plain tensors.
- CMA-ES, SNES and XNES have no functional form: their ``SearchAlgorithm`` classes are stepped on a
  ``Problem`` that runs nothing, whose evaluation writes the fitness neuroevo received.
  EvoTorch's CMA-ES samples, evaluates and updates within one ``step()``: ``ask()`` draws the sample
  with the searcher's own ``sample_distribution()``, and ``tell()`` runs ``step()`` on that very sample.
  SNES and XNES update from the previous population, then sample the next, within one ``step()``:
  ``tell()`` writes the fitness into the searcher's population and steps, which updates the search
  distribution (``center`` is current after ``tell``) and samples the next generation for ``ask()``.

Vocabulary: the configs speak neuroevo's, not EvoTorch's: ``sigma`` is the spread (EvoTorch's ``stdev``)
and ``lr`` the center's learning rate (EvoTorch's ``center_learning_rate``, CMA-ES's ``c_m``). The old
EvoTorch-style names are still read, with a DeprecationWarning (each config's ``renamed``).

Randomness: generation g is drawn from a generator seeded with ``derive_seed(seed, g)``: the Problem's
own generator (CMA-ES, SNES, XNES) or, since EvoTorch's functional samplers draw from torch's global
generator, the global generators of the CPU and the optimizer's device, forked and seeded for the draw
(and left as they were). State: the search distribution as plain tensors (mean, step size, covariance
and its factor, evolution paths, ClipUp's velocity); a loaded optimizer rebuilds the searcher from its
config and writes them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from neuroevo.algorithms.base import Optimizer, OptimizerConfig
from neuroevo.algorithms.evotorch_internals import (
    _cmaes_center,
    _cmaes_mean_stdev,
    _cmaes_state,
    _evotorch,
    _global_rng,
    _load_cem_state,
    _load_cmaes_state,
    _load_nes_state,
    _load_pgpe_state,
    _nes_state,
    _pgpe_center,
    _pgpe_velocity,
    _quiet,
    _unlimited_if_none,
)
from neuroevo.seeding import derive_seed

# == The adapters =========================================================================================


def _rule_of_thumb_popsize(num_params: int) -> int:
    """4 + floor(3 ln D): CMA-ES's default population size (Hansen 2016), also EvoTorch's for SNES and XNES."""
    return 4 + math.floor(3 * math.log(num_params))


class _EvoTorchOptimizer(Optimizer):
    """What the five share: EvoTorch imported before the config is checked, a searcher built from the
    config and ``center`` (``_build``), and its search state saved as plain tensors (``_search_state``)."""

    def __init__(self, center, config=None, **kwargs):
        self._et = _evotorch()
        super().__init__(center, config, **kwargs)
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{self.name}: device must be a CPU or CUDA device, got {self.device}")
        self._rebuild()

    @property
    def popsize(self) -> int:
        c = self.config
        return c.popsize if c.popsize is not None else _rule_of_thumb_popsize(self.num_params)

    def _validate_config(self) -> None:
        c = self.config
        if c.popsize is not None and c.popsize <= 0:
            raise ValueError(f"{self.name}: popsize must be positive, got {c.popsize}")
        if c.popsize is not None and c.popsize < 2:
            raise ValueError(f"{self.name}: popsize must be at least 2, got {c.popsize}")
        if c.sigma <= 0:
            raise ValueError(f"{self.name}: sigma must be positive, got {c.sigma}")
        if getattr(c, "lr", 1.0) <= 0:
            raise ValueError(f"{self.name}: lr must be positive, got {c.lr}")
        for key in ("sigma_lr", "sigma_norm", "sigma_min", "sigma_max", "sigma_max_change"):
            value = getattr(c, key, None)
            if value is not None and value <= 0:
                raise ValueError(f"{self.name}: {key} must be positive or None, got {value}")
        ranking = getattr(c, "ranking_method", None)
        if ranking is not None and ranking not in self._et.rankers:
            choices = ", ".join(self._et.rankers)
            raise ValueError(f"{self.name}: ranking_method must be one of {choices}, got {ranking!r}")

    # Every call into EvoTorch runs inside _global_rng: it never moves the caller's random stream.
    def ask_population(self):
        with _global_rng(self.device):
            return super().ask_population()

    def tell(self, fitness):
        with _global_rng(self.device):
            return super().tell(fitness)

    def _rebuild(self) -> None:
        with _global_rng(self.device), _quiet():
            self._build()

    def _build(self) -> None:
        """A fresh EvoTorch searcher (or functional state) from ``self.config``, centered on ``self.center``."""
        raise NotImplementedError

    def _search_state(self) -> dict[str, Any]:
        """The search distribution's state beyond ``center``: tensors and numbers."""
        raise NotImplementedError

    def _load_search_state(self, search: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["search"] = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                           for k, v in self._search_state().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._rebuild()
        self._load_search_state({k: v.to(self.device).clone() if isinstance(v, torch.Tensor) else v
                                 for k, v in state["search"].items()})


# -- CMA-ES -------------------------------------------------------------------------------------------------


@dataclass
class CMAESConfig(OptimizerConfig):
    popsize: int | None = None  # type: ignore[assignment]  # None: the rule of thumb from D
    """members per generation (lambda); None: 4 + floor(3 ln D), the default of Hansen (2016) and EvoTorch"""
    sigma: float = 0.1
    """initial step size sigma_0: the search distribution starts as N(center, sigma_0^2 I) (EvoTorch's
    ``stdev_init``, which has no default)"""
    separable: bool = False
    """sep-CMA-ES (Ros and Hansen 2008): adapt only the diagonal of C, O(D) per member instead of O(D^2)"""
    active: bool = True
    """active CMA: negative weights for the worst members (Jastrebski and Arnold 2006), as in Hansen's
    tutorial, pycma and EvoTorch"""
    lr: float = 1.0
    """learning rate of the mean, c_m (EvoTorch's and the tutorial's 1)"""
    sigma_min: float | None = None
    """floor on every coordinate's standard deviation sigma * sqrt(C_ii), not on the global step size
    sigma alone (None: none)"""
    sigma_max: float | None = None
    """ceiling on every coordinate's standard deviation sigma * sqrt(C_ii) (None: none)"""

    renamed: ClassVar[dict[str, str]] = {"c_m": "lr", "stdev_min": "sigma_min", "stdev_max": "sigma_max"}
    """old name -> new name: the old names are still read, with a DeprecationWarning"""


class CMAES(_EvoTorchOptimizer):
    """CMA-ES: Hansen and Ostermeier (2001), "Completely Derandomized Self-Adaptation in Evolution
    Strategies", Evolutionary Computation 9(2); Hansen (2016), "The CMA Evolution Strategy: A Tutorial",
    arXiv:1604.00772. EvoTorch's ``CMAES`` (a vectorized port of pycma r3.2.2), separable or full.

    Members x_i = m + sigma * A z_i, z_i ~ N(0, I), C = A A^T (Cholesky; the diagonal when separable).
    The mean moves to the weighted mean of the best floor(P/2); cumulative step-size adaptation of
    sigma through the path p_sigma; rank-one (path p_c) and rank-mu updates of C. C is refactored every
    max(1, floor(1 / (10 D (c_1 + c_mu)))) generations (EvoTorch's ``limit_C_decomposition``).
    """

    config_class = CMAESConfig
    name = "CMAES"

    def _build(self):
        c = self.config
        if self.num_params < 2:  # EvoTorch's CMAES mistakes a length-1 center for a scalar
            raise ValueError(f"CMAES: needs at least 2 parameters, got {self.num_params}")
        self._searcher = self._et.AskedCMAES(
            self._et.HandoverProblem(self.num_params, self.device, self.center.dtype), stdev_init=c.sigma,
            popsize=self.popsize,
            center_init=self.center, c_m=c.lr, active=c.active, separable=c.separable, stdev_min=c.sigma_min,
            stdev_max=c.sigma_max,
        )

    def _ask(self):
        searcher = self._searcher
        searcher.problem.manual_seed(derive_seed(self.seed, self.generation))
        searcher.asked = None
        searcher.asked = searcher.sample_distribution()
        return searcher.asked[2]

    def _tell(self, params, fitness):
        searcher = self._searcher
        searcher.problem.handover, searcher.problem.expected = fitness, searcher.asked[2]
        searcher.step()
        self.center = _cmaes_center(searcher).clone()
        return {"train/sigma": _cmaes_mean_stdev(searcher)}

    def _search_state(self):
        return _cmaes_state(self._searcher)

    def _load_search_state(self, search):
        _load_cmaes_state(self._searcher, search, self.generation)


# -- PGPE with ClipUp ---------------------------------------------------------------------------------------


@dataclass
class PGPEConfig(OptimizerConfig):
    popsize: int = 200
    """members per generation (even: symmetric pairs); EvoTorch's README example (Humanoid)"""
    sigma: float = 0.02
    """initial standard deviation of every coordinate, used only when ``sigma_norm`` is None"""
    sigma_norm: float | None = 0.27
    """the initial spread given as the norm of the standard-deviation vector [D] instead: every
    coordinate starts at sigma_norm / sqrt(D), whatever ``sigma`` says (the ClipUp paper's "radius",
    EvoTorch's ``radius_init``; Toklu et al. 2020's Humanoid setting, EvoTorch's README example). None:
    ``sigma``"""
    lr: float = 0.01125
    """ClipUp's step size alpha (EvoTorch's README example, 0.75 * max_speed)"""
    max_speed: float = 0.015
    """ClipUp's cap on the norm of the velocity [D], i.e. on the length of one step of the center"""
    momentum: float = 0.9
    """ClipUp's momentum (its paper's and EvoTorch's default)"""
    sigma_lr: float = 0.1
    """learning rate of the standard deviations (EvoTorch's README example)"""
    sigma_max_change: float | None = 0.2
    """largest relative change of a standard deviation per generation (Ha 2017, EvoTorch's default);
    None: unlimited"""
    ranking_method: str = "centered"
    """fitness shaping: EvoTorch's 'centered' ranks in [-0.5, 0.5] (Salimans et al. 2017), its default"""
    symmetric: bool = True
    """antithetic pairs center +- eps (Sehnke et al. 2010's symmetric sampling)"""

    renamed: ClassVar[dict[str, str]] = {"center_learning_rate": "lr", "stdev_learning_rate": "sigma_lr",
                                         "stdev_max_change": "sigma_max_change", "radius_init": "sigma_norm"}
    """old name -> new name: the old names are still read, with a DeprecationWarning"""


class PGPE(_EvoTorchOptimizer):
    """PGPE: Sehnke, Osendorfer, Rueckstiess, Graves, Peters, Schmidhuber (2010), "Parameter-exploring
    Policy Gradients", Neural Networks 23(4), with symmetric sampling, centered ranks, and the ClipUp
    optimizer of Toklu, Liskowski, Srivastava (2020), "ClipUp: A Simple and Powerful Optimizer for
    Distribution-based Policy Evolution", PPSN XVI. EvoTorch's functional ``pgpe``.

    Members center +- eps_i, eps_i ~ N(0, diag(sigma^2)), sigma [D] the standard deviations. ClipUp on
    the center's gradient g: v <- momentum * v + lr * g / |g|, v clipped to norm max_speed,
    center <- center + v. The standard deviations follow their own gradient at ``sigma_lr``, each change
    capped at ``sigma_max_change`` of the old value.
    """

    config_class = PGPEConfig
    name = "PGPE"

    def _validate_config(self):
        super()._validate_config()
        c = self.config
        if c.symmetric and c.popsize % 2:
            raise ValueError(f"PGPE: popsize must be even (symmetric pairs), got {c.popsize}")
        if c.max_speed <= 0:
            raise ValueError(f"PGPE: max_speed must be positive, got {c.max_speed}")
        if not 0 <= c.momentum < 1:
            raise ValueError(f"PGPE: momentum must be in [0, 1), got {c.momentum}")

    def _build(self):
        c = self.config
        self._state = self._et.func.pgpe(
            center_init=self.center.clone(), center_learning_rate=c.lr, stdev_learning_rate=c.sigma_lr,
            objective_sense="max", ranking_method=c.ranking_method,
            optimizer="clipup", optimizer_config={"max_speed": c.max_speed, "momentum": c.momentum},
            stdev_init=c.sigma if c.sigma_norm is None else None, radius_init=c.sigma_norm,
            stdev_max_change=_unlimited_if_none(c.sigma_max_change), symmetric=c.symmetric,
        )
        self._asked = None

    def _ask(self):
        with _global_rng(self.device, derive_seed(self.seed, self.generation)):
            self._asked = self._et.func.pgpe_ask(self._state, popsize=self.popsize)
        return self._asked

    def _tell(self, params, fitness):
        self._state = self._et.func.pgpe_tell(self._state, self._asked, fitness)
        self._asked = None
        self.center = _pgpe_center(self._state).clone()
        return {"train/sigma": float(self._state.stdev.mean()),
                "train/speed": float(_pgpe_velocity(self._state).norm())}

    def _search_state(self):
        return {"stdev": self._state.stdev, "velocity": _pgpe_velocity(self._state)}

    def _load_search_state(self, search):
        self._state = _load_pgpe_state(self._state, search["stdev"], search["velocity"])


# -- SNES and XNES ------------------------------------------------------------------------------------------


@dataclass
class SNESConfig(OptimizerConfig):
    popsize: int | None = None  # type: ignore[assignment]  # None: the rule of thumb from D
    """members per generation; None: 4 + floor(3 ln D) (Schaul et al. 2011, EvoTorch's default)"""
    sigma: float = 0.1
    """initial standard deviation of every coordinate (EvoTorch's ``stdev_init``, which has no default)"""
    lr: float = 1.0
    """eta_mu, the learning rate of the center (the paper's and EvoTorch's 1)"""
    sigma_lr: float | None = None
    """eta_sigma; None: (3 + ln D) / (5 sqrt D), the paper's and EvoTorch's default"""
    ranking_method: str = "nes"
    """fitness shaping: EvoTorch's 'nes' utilities max(0, ln(P/2 + 1) - ln k), normalized, minus 1/P"""

    renamed: ClassVar[dict[str, str]] = {"center_learning_rate": "lr", "stdev_learning_rate": "sigma_lr"}
    """old name -> new name: the old names are still read, with a DeprecationWarning"""


class _NES(_EvoTorchOptimizer):
    """SNES and XNES: an EvoTorch ``GaussianSearchAlgorithm`` stepped once per ``tell`` (update from this
    generation, then sample the next)."""

    def _build(self):
        c = self.config
        self._searcher = getattr(self._et, self.name)(
            self._et.HandoverProblem(self.num_params, self.device, self.center.dtype), stdev_init=c.sigma,
            popsize=self.popsize,
            center_init=self.center, center_learning_rate=c.lr, stdev_learning_rate=c.sigma_lr,
            scale_learning_rate=False, ranking_method=c.ranking_method,
        )

    def _ask(self):
        searcher = self._searcher
        if searcher.population is None:  # a fresh or just-loaded searcher: its first step() only samples
            searcher.problem.manual_seed(derive_seed(self.seed, self.generation))
            searcher.step()
        return searcher.population.access_values(keep_evals=True).clone()

    def _tell(self, params, fitness):
        searcher = self._searcher
        searcher.population.set_evals(fitness)
        # The update from this generation, then the next generation's sample (its fitness NaN until its tell).
        searcher.problem.manual_seed(derive_seed(self.seed, self.generation + 1))
        searcher.step()
        self.center = searcher.status["center"].clone()
        return {"train/sigma": float(self._stdevs().mean())}

    def _stdevs(self) -> torch.Tensor:
        return self._searcher.status["stdev"]

    def _search_state(self):
        return _nes_state(self._searcher)

    def _load_search_state(self, search):
        _load_nes_state(self._searcher, search)


class SNES(_NES):
    """SNES: Schaul, Glasmachers, Schmidhuber (2011), "High Dimensions and Heavy Tails for Natural
    Evolution Strategies", GECCO. EvoTorch's ``SNES``.

    Members x_i = mu + sigma * z_i, z_i ~ N(0, I), sigma a vector. With utilities u_i (``ranking_method``):
    mu <- mu + eta_mu * sigma * sum_i u_i z_i,   sigma <- sigma * exp(eta_sigma / 2 * sum_i u_i (z_i^2 - 1)),
    eta_mu = ``lr``, eta_sigma = ``sigma_lr``.
    """

    config_class = SNESConfig
    name = "SNES"


@dataclass
class XNESConfig(SNESConfig):
    popsize: int | None = None
    """members per generation; None: 4 + floor(3 ln D) (Glasmachers et al. 2010, EvoTorch's default)"""
    sigma_lr: float | None = None
    """eta_sigma = eta_B; None: 0.6 (3 + ln D) / (D sqrt D), the paper's and EvoTorch's default"""


class XNES(_NES):
    """xNES: Glasmachers, Schaul, Sun, Wierstra, Schmidhuber (2010), "Exponential Natural Evolution
    Strategies", GECCO. EvoTorch's ``XNES``.

    Members x_i = mu + A z_i, z_i ~ N(0, I), A a full [D, D] factor of the covariance (O(D^2) memory,
    O(D^3) per generation for its inverse: for small D). With utilities u_i:
    mu <- mu + eta_mu * A sum_i u_i z_i,   A <- A expm(eta_sigma / 2 * sum_i u_i (z_i z_i^T - I)),
    eta_mu = ``lr``, eta_sigma = ``sigma_lr``.
    """

    config_class = XNESConfig
    name = "XNES"

    def _stdevs(self):
        a = self._searcher.status["stdev"]  # the factor A: x = mu + A z, the covariance A A^T
        return (a * a).sum(1).sqrt()


# -- CEM ---------------------------------------------------------------------------------------------------


@dataclass
class CEMConfig(OptimizerConfig):
    popsize: int = 100
    """members per generation (EvoTorch's documented example; rllab's ``n_samples``, the code of Duan
    et al. 2016)"""
    sigma: float = 1.0
    """initial standard deviation of every coordinate (rllab's ``init_std``)"""
    parenthood_ratio: float = 0.5
    """fraction of the population that are parents (elites), whose mean and standard deviations are
    the next distribution's: EvoTorch's documented example (rllab's 0.05 relies on extra decaying noise,
    which EvoTorch's CEM lacks; without it a small fraction collapses early)"""
    sigma_min: float | None = None
    """floor on every coordinate's standard deviation (None: none)"""
    sigma_max: float | None = None
    """ceiling on every coordinate's standard deviation (None: none)"""
    sigma_max_change: float | None = None
    """largest relative change of a standard deviation per generation (None: unlimited, EvoTorch's default)"""

    renamed: ClassVar[dict[str, str]] = {"stdev_min": "sigma_min", "stdev_max": "sigma_max",
                                         "stdev_max_change": "sigma_max_change"}
    """old name -> new name: the old names are still read, with a DeprecationWarning"""


class CEM(_EvoTorchOptimizer):
    """The cross-entropy method: Rubinstein (1999), "The Cross-Entropy Method for Combinatorial and
    Continuous Optimization", Methodology and Computing in Applied Probability 1(2), in the continuous,
    diagonal-Gaussian form of Duan, Chen, Houthooft, Schulman, Abbeel (2016), "Benchmarking Deep
    Reinforcement Learning for Continuous Control", ICML. EvoTorch's functional ``cem``.

    Members x_i ~ N(center, diag(sigma^2)), sigma [D]; the best floor(P * parenthood_ratio) are the parents,
    and center <- their mean, sigma <- their (unbiased) standard deviation per coordinate.
    """

    config_class = CEMConfig
    name = "CEM"

    def _validate_config(self):
        super()._validate_config()
        c = self.config
        if not 0 < c.parenthood_ratio <= 1:
            raise ValueError(f"CEM: parenthood_ratio must be in (0, 1], got {c.parenthood_ratio}")
        if math.floor(c.popsize * c.parenthood_ratio) < 2:
            raise ValueError(f"CEM: popsize * parenthood_ratio must give at least 2 parents, got "
                             f"{c.popsize} * {c.parenthood_ratio}")

    def _build(self):
        c = self.config
        self._state = self._et.func.cem(
            center_init=self.center.clone(), parenthood_ratio=c.parenthood_ratio, objective_sense="max",
            stdev_init=c.sigma, stdev_min=c.sigma_min, stdev_max=c.sigma_max,
            stdev_max_change=_unlimited_if_none(c.sigma_max_change),
        )
        self._asked = None

    def _ask(self):
        with _global_rng(self.device, derive_seed(self.seed, self.generation)):
            self._asked = self._et.func.cem_ask(self._state, popsize=self.popsize)
        return self._asked

    def _tell(self, params, fitness):
        self._state = self._et.func.cem_tell(self._state, self._asked, fitness)
        self._asked = None
        self.center = self._state.center.clone()
        return {"train/sigma": float(self._state.stdev.mean())}

    def _search_state(self):
        return {"stdev": self._state.stdev}

    def _load_search_state(self, search):
        self._state = _load_cem_state(self._state, self.center.clone(), search["stdev"])

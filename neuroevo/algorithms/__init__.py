"""Population optimizers: all maximize, all ask/tell over flat parameter tensors on any device.

``base.py`` holds what every optimizer shares (ask / tell / state / best, ``optimize`` and ``stop``);
``population.py`` the noise-table optimizers' subclass and their compact populations; one file per algorithm.
"""

import torch

from neuroevo.algorithms.aco import ACOR, ACORConfig
from neuroevo.algorithms.ars import ARS, ARSConfig
from neuroevo.algorithms.base import (
    Optimizer,
    OptimizerConfig,
    OptimizeResult,
    StopCriteria,
    centered_ranks,
    sanitize_fitness,
)
from neuroevo.algorithms.chains import HillClimbing, HillClimbingConfig, SAConfig, SimulatedAnnealing
from neuroevo.algorithms.de import DE, DEConfig
from neuroevo.algorithms.eggroll import EGGROLL, EGGROLLConfig, LowRankPopulation
from neuroevo.algorithms.es import ES, ESConfig
from neuroevo.algorithms.evotorch_searchers import (
    CEM,
    CMAES,
    PGPE,
    SNES,
    XNES,
    CEMConfig,
    CMAESConfig,
    PGPEConfig,
    SNESConfig,
    XNESConfig,
)
from neuroevo.algorithms.ga import GA, GAConfig
from neuroevo.algorithms.nelder_mead import NelderMead, NelderMeadConfig
from neuroevo.algorithms.noise import NoiseTable
from neuroevo.algorithms.population import (
    MirroredOptimizer,
    NoiseTableConfig,
    NoiseTableOptimizer,
    Population,
    materialize,
)
from neuroevo.algorithms.pso import PSO, PSOConfig
from neuroevo.algorithms.random_search import RandomSearch, RandomSearchConfig

#: name on the command line and config section -> optimizer class. A new optimizer is one file plus one entry
#: here (or a :func:`register_optimizer` call): its config dataclass becomes the config section of that name.
ALGORITHMS: dict[str, type[Optimizer]] = {
    "es": ES,
    "eggroll": EGGROLL,
    "ga": GA,
    "ars": ARS,
    "pso": PSO,
    "de": DE,
    "sa": SimulatedAnnealing,
    "hill_climbing": HillClimbing,
    "random_search": RandomSearch,
    "nelder_mead": NelderMead,
    "aco_r": ACOR,
    # EvoTorch's searchers, stepped on our evaluator (pip install evotorch)
    "cmaes": CMAES,
    "pgpe": PGPE,
    "snes": SNES,
    "xnes": XNES,
    "cem": CEM,
}


def register_optimizer(name: str, cls: type[Optimizer]) -> type[Optimizer]:
    """Register ``cls`` as ``name``: ``--algo NAME``, the config section ``[NAME]`` (``cls.config_class``),
    ``make_optimizer(NAME, ...)`` and ``neuroevo compare --algos NAME`` then know it (configs made after this
    call). Returns ``cls``, so it also works as ``register_optimizer("mine", Mine)`` at the end of a module."""
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"optimizer name {name!r} must be a lower-case identifier (it names a config section)")
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"{cls!r} is not an Optimizer subclass")
    if name in ALGORITHMS and ALGORITHMS[name] is not cls:
        raise ValueError(f"an optimizer is registered as {name!r} already ({ALGORITHMS[name].__name__})")
    reserved = {"env", "policy", "run", "ppo", "sac", "td3", "log", "algorithms"}
    if name in reserved:
        raise ValueError(f"{name!r} names a config section of its own; choose another name")
    ALGORITHMS[name] = cls
    return cls


def init_scale_for(policy, config) -> torch.Tensor | None:
    """The ``init_scale`` an optimizer with ``config`` needs: ``policy.init_std()`` where the config asks for
    random starting points (``init = "random"``, GA and random search), else None."""
    return policy.init_std() if getattr(config, "init", None) == "random" else None


def make_optimizer(name: str, center, config=None, *, layout=None, init_scale=None, **kwargs) -> Optimizer:
    """The optimizer registered as ``name`` (a key of :data:`ALGORITHMS`). ``layout``: the policy's
    ``param_layout()``, passed on to the optimizers that use one (``takes_layout``: EGGROLL), else ignored.
    ``init_scale``: the policy's ``init_std()``, passed on to those that take one (``takes_init_scale``: GA,
    random search, for ``init = "random"``), else ignored."""
    try:
        cls = ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}") from None
    if layout is not None and cls.takes_layout:
        kwargs["layout"] = layout
    if init_scale is not None and cls.takes_init_scale:
        kwargs["init_scale"] = init_scale
    return cls(center, config, **kwargs)


__all__ = [
    "ACOR",
    "ACORConfig",
    "ALGORITHMS",
    "ARS",
    "ARSConfig",
    "CEM",
    "CEMConfig",
    "CMAES",
    "CMAESConfig",
    "DE",
    "DEConfig",
    "EGGROLL",
    "EGGROLLConfig",
    "ES",
    "ESConfig",
    "GA",
    "GAConfig",
    "HillClimbing",
    "HillClimbingConfig",
    "LowRankPopulation",
    "MirroredOptimizer",
    "NelderMead",
    "NelderMeadConfig",
    "NoiseTable",
    "NoiseTableConfig",
    "NoiseTableOptimizer",
    "OptimizeResult",
    "Optimizer",
    "OptimizerConfig",
    "PGPE",
    "PGPEConfig",
    "PSO",
    "PSOConfig",
    "Population",
    "RandomSearch",
    "RandomSearchConfig",
    "SAConfig",
    "SNES",
    "SNESConfig",
    "StopCriteria",
    "SimulatedAnnealing",
    "centered_ranks",
    "init_scale_for",
    "make_optimizer",
    "register_optimizer",
    "materialize",
    "XNES",
    "XNESConfig",
    "sanitize_fitness",
]

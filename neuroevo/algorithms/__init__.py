"""Population optimizers: all maximize, all ask/tell over flat parameter tensors on any device."""

from neuroevo.algorithms.ars import ARS, ARSConfig
from neuroevo.algorithms.base import (
    Optimizer,
    OptimizerConfig,
    Population,
    centered_ranks,
    materialize,
    sanitize_fitness,
)
from neuroevo.algorithms.chains import HillClimbing, HillClimbingConfig, SAConfig, SimulatedAnnealing
from neuroevo.algorithms.de import DE, DEConfig
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
from neuroevo.algorithms.noise import NoiseTable
from neuroevo.algorithms.pso import PSO, PSOConfig
from neuroevo.algorithms.random_search import RandomSearch, RandomSearchConfig

#: name on the command line -> optimizer class
ALGORITHMS: dict[str, type[Optimizer]] = {
    "es": ES,
    "ga": GA,
    "ars": ARS,
    "pso": PSO,
    "de": DE,
    "sa": SimulatedAnnealing,
    "hill_climbing": HillClimbing,
    "random_search": RandomSearch,
    # EvoTorch's searchers, stepped on our evaluator (pip install evotorch)
    "cmaes": CMAES,
    "pgpe": PGPE,
    "snes": SNES,
    "xnes": XNES,
    "cem": CEM,
}


def make_optimizer(name: str, center, config=None, **kwargs) -> Optimizer:
    """The optimizer registered as ``name`` (a key of :data:`ALGORITHMS`)."""
    try:
        cls = ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}") from None
    return cls(center, config, **kwargs)


__all__ = [
    "ALGORITHMS",
    "ARS",
    "ARSConfig",
    "CEM",
    "CEMConfig",
    "CMAES",
    "CMAESConfig",
    "DE",
    "DEConfig",
    "ES",
    "ESConfig",
    "GA",
    "GAConfig",
    "HillClimbing",
    "HillClimbingConfig",
    "NoiseTable",
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
    "SimulatedAnnealing",
    "centered_ranks",
    "make_optimizer",
    "materialize",
    "XNES",
    "XNESConfig",
    "sanitize_fitness",
]

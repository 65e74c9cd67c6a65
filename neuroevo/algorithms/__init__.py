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
from neuroevo.algorithms.es import ES, ESConfig
from neuroevo.algorithms.ga import GA, GAConfig
from neuroevo.algorithms.noise import NoiseTable

#: name on the command line -> optimizer class
ALGORITHMS: dict[str, type[Optimizer]] = {"es": ES, "ga": GA, "ars": ARS}


def make_optimizer(name: str, center, config=None, **kwargs) -> Optimizer:
    """The optimizer registered as ``name`` ('es', 'ga', 'ars')."""
    try:
        cls = ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}") from None
    return cls(center, config, **kwargs)


__all__ = [
    "ALGORITHMS",
    "ARS",
    "ARSConfig",
    "ES",
    "ESConfig",
    "GA",
    "GAConfig",
    "NoiseTable",
    "Optimizer",
    "OptimizerConfig",
    "Population",
    "centered_ranks",
    "make_optimizer",
    "materialize",
    "sanitize_fitness",
]

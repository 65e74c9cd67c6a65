"""Pure random search, the floor every other optimizer must beat: Brooks (1958), "A Discussion of
Random Methods for Seeking Maxima", Operations Research 6(2), 244-251.

Every generation samples P points independently around the fixed starting point,
start + sigma * eps (eps from the shared noise table), and keeps the best point seen; nothing is
learned from one generation to the next. The solution (``center``) is that best point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.population import NoiseTableConfig, NoiseTableOptimizer


@dataclass
class RandomSearchConfig(NoiseTableConfig):
    popsize: int = 64
    """points sampled per generation"""
    sigma: float = 0.1
    """standard deviation of the samples around the starting point"""


class RandomSearch(NoiseTableOptimizer):
    """Pure random search around the starting point."""

    config_class = RandomSearchConfig
    name = "RandomSearch"
    _state_keys = ("start",)

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.start = self.center.clone()

    def _ask(self):
        offsets = self.noise.sample_offsets(self.popsize, self.num_params, self.generator)
        return self._population(self.start[None], torch.zeros(self.popsize, dtype=torch.int64), offsets,
                                torch.ones(self.popsize))

    def _tell(self, params, fitness):
        self.center = self.best.clone()  # the base keeps the best member seen
        return {}

"""Pure random search, the floor every other optimizer must beat: Brooks (1958), "A Discussion of
Random Methods for Seeking Maxima", Operations Research 6(2), 244-251.

Every generation samples P points independently around the fixed starting point,
start + sigma * eps (eps from the shared noise table), and keeps the best point seen; nothing is
learned from one generation to the next. The solution (``center``) is that best point.

``init = "random"`` samples fresh networks instead: each point a draw from the policy's own init distribution
(``RandomStartsOptimizer``), the random search of Such et al. (2017), whose every network was a new random
initialization (their GA with no selection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.lineages import Lineages, RandomStartsOptimizer
from neuroevo.algorithms.population import NoiseTableConfig, Population


@dataclass
class RandomSearchConfig(NoiseTableConfig):
    popsize: int = 64
    """points sampled per generation"""
    sigma: float = 0.1
    """standard deviation of the samples around the starting point (init "center")"""
    init: str = "center"
    """"center": points around the starting point; "random": fresh networks from the policy's init distribution
    (needs ``init_scale``)"""


class RandomSearch(RandomStartsOptimizer):
    """Pure random search around the starting point, or over the policy's init distribution."""

    config_class = RandomSearchConfig
    name = "RandomSearch"

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self._asked: Population | None = None

    def _ask(self):
        if self.init_scale is not None:
            self._asked = self._random_starts(self.root, self.popsize)
        else:
            offsets = self.noise.sample_offsets(self.popsize, self.num_params, self.generator)
            self._asked = self._population(self.root[None], torch.zeros(self.popsize, dtype=torch.int64), offsets,
                                           torch.ones(self.popsize))
        return self._asked

    def _lineage_of(self, index):
        assert self._asked is not None
        return Lineages.of_members(self._asked, torch.tensor([index]), Lineages.roots(1))

    def _tell(self, params, fitness):
        # the base keeps the best member seen (and _new_best its lineage)
        self.center, self.center_lineage = self.best.clone(), self.best_lineage
        return {}

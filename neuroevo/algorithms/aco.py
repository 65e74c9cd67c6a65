"""Ant colony optimization for continuous domains, ACO_R: Socha and Dorigo (2008), "Ant colony optimization
for continuous domains", European Journal of Operational Research 185(3), 1155-1173.

The pheromone is an archive of the k best solutions found, s_1..s_k, ranked by fitness (best first).
Solution l has the weight of a Gaussian kernel of its rank (the paper's eq. for omega_l),

    w_l = exp(-(l - 1)^2 / (2 q^2 k^2)) / (q k sqrt(2 pi)),

and each of the P ants (the population) picks one guide l with probability w_l / sum_r w_r, then samples
every coordinate i from N(s_l^i, sigma_l^i) with

    sigma_l^i = xi * sum_e |s_e^i - s_l^i| / (k - 1),

the mean distance from the guide to the other archive solutions in that coordinate, scaled by xi. The P
new solutions join the archive and the k best of the k + P stay. Small q prefers the best-ranked guides;
xi plays the part of pheromone evaporation: larger, slower convergence. The paper's benchmark runs use
k = 50, q = 1e-4, xi = 0.85 with 2 ants; k and xi are the defaults here. With q = 1e-4 the best solution
takes all the probability (w_2 / w_1 = exp(-20,000)): fine for 2 ants, but with a population of ants it
sends every ant after one guide, so q defaults to 0.1, which spreads the guides over the top ten or so (on
CartPole-v1, 64 ants: 3 of 3 seeds solved within 60 generations with q = 0.1, 1 of 3 with q = 1e-4).

Batched: the guides are one multinomial draw [P]; sigma for the whole archive is a [k, D] computation by
sorting each coordinate and prefix sums (sum_e |s_e - v| from the sorted position of v), O(k D) memory
rather than the [k, k, D] of the direct sum; the ants are guide rows plus sigma rows times N(0, I).
Not implemented: the paper's rotation of the coordinate system towards a random archive direction for
correlated variables, an O(D^2) Gram-Schmidt per ant, out of reach for policies of 10^4 parameters.

The archive starts with P samples of center + sigma * N(0, I) per generation until it holds k solutions
(ceil(k / P) generations; the paper samples its domain uniformly). With noisy fitness (RL episodes) a
solution keeps the fitness of the evaluation that admitted it. The solution (``center``) is s_1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuroevo.algorithms.base import Optimizer, OptimizerConfig


@dataclass
class ACORConfig(OptimizerConfig):
    popsize: int = 64
    """ants: new solutions per generation"""
    sigma: float = 0.1
    """standard deviation of the first archive's samples around the starting point"""
    archive_size: int = 50
    """k: solutions kept (the paper's 50)"""
    locality: float = 0.1
    """q: width of the rank kernel in units of k; small prefers the best-ranked guides"""
    evaporation: float = 0.85
    """xi: the Gaussians' spread relative to the mean distance to the other archive solutions (the paper's 0.85)"""


def rank_weights(archive_size: int, locality: float) -> torch.Tensor:
    """w_l, l = 1..k: the Gaussian kernel of the rank, [k] float64 (unnormalized as in the paper)."""
    width = locality * archive_size
    rank = torch.arange(archive_size, dtype=torch.float64)
    return torch.exp(-(rank**2) / (2 * width**2)) / (width * math.sqrt(2 * math.pi))


def mean_distances(archive: torch.Tensor) -> torch.Tensor:
    """sum_e |s_e - s_l| / (k - 1) for every archive row l and coordinate: [k, D] from archive [k, D]."""
    k = archive.shape[0]
    # coordinates as rows [D, k] (a sort along contiguous memory), centred so that the prefix sums do not
    # lose the spread to a large common offset
    values, order = (archive - archive.mean(0)).T.contiguous().sort(dim=1)
    below = torch.arange(k, device=archive.device, dtype=archive.dtype)  # how many sorted values precede
    prefix = values.cumsum(1) - values  # their sum
    suffix = values.sum(1, keepdim=True) - prefix - values  # the sum of the values after
    sums = (below * values - prefix) + (suffix - (k - 1 - below) * values)
    return torch.empty_like(values).scatter_(1, order, sums.clamp(min=0)).T / (k - 1)


class ACOR(Optimizer):
    """ACO_R: a ranked archive of k solutions, each ant sampling a Gaussian around a rank-weighted guide."""

    config_class = ACORConfig
    name = "ACOR"
    _state_keys = ("archive", "archive_fitness")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.archive = torch.empty(0, self.num_params, device=self.device)  # [<= k, D], best first
        self.archive_fitness = torch.empty(0, device=self.device)
        self.guides = torch.empty(0, dtype=torch.int64)

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.archive_size < 2:
            raise ValueError(f"ACOR: archive_size must be at least 2 (sigma averages over the others), "
                             f"got {c.archive_size}")
        if c.locality <= 0:
            raise ValueError(f"ACOR: locality (q) must be positive, got {c.locality}")
        if c.evaporation <= 0:
            raise ValueError(f"ACOR: evaporation (xi) must be positive, got {c.evaporation}")

    def _gauss(self) -> torch.Tensor:
        return torch.randn(self.popsize, self.num_params, generator=self.generator).to(self.device)

    def _ask(self) -> torch.Tensor:
        c = self.config
        if self.archive.shape[0] < c.archive_size:  # filling the archive: samples around the start
            self.guides = torch.empty(0, dtype=torch.int64)
            return self.center + c.sigma * self._gauss()
        weights = rank_weights(c.archive_size, c.locality)
        self.guides = torch.multinomial(weights / weights.sum(), self.popsize, replacement=True,
                                        generator=self.generator)
        guides = self.guides.to(self.device)
        spread = c.evaporation * mean_distances(self.archive)[guides]
        return self.archive[guides] + spread * self._gauss()

    def _tell(self, params, fitness):
        solutions = torch.cat([self.archive, params])
        values = torch.cat([self.archive_fitness, fitness])
        # archive first: on a tie the older solution stays
        keep = values.argsort(descending=True, stable=True)[: self.config.archive_size]
        self.archive, self.archive_fitness = solutions[keep], values[keep]
        self.center = self.archive[0].clone()
        entered = int((keep >= len(values) - self.popsize).sum())
        return {"train/archive_entered": float(entered), "train/archive_worst_fitness": float(values[keep[-1]])}

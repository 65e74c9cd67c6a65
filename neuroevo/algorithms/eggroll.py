"""EGGROLL: OpenAI-ES with low-rank perturbations. Sarkar, Fellows, Duque et al. (2025), "Evolution Strategies
at the Hyperscale", arXiv:2511.16652.

Each member perturbs every weight matrix M (rows x cols) of the network by a rank-r product instead of a
full Gaussian matrix:

    M_i = M + sigma * A_i B_i^T / sqrt(r),   A_i [rows, r], B_i [cols, r] standard normal,

the 1/sqrt(r) keeping each entry's variance at sigma^2 whatever r is (the paper's scaling). Other tensors
(biases, and any parameter that is not a Linear or Conv2d weight) get ES's full-rank noise. The layout comes
from the policy (``policy.param_layout()``); without one, every parameter is dense and EGGROLL is ES.

Everything else is :class:`~neuroevo.algorithms.es.ES`: antithetic pairs (member i + P/2 uses -A_i), centered
ranks, the search gradient ``g = 1 / (P sigma) sum_i (u_i - u_{i+P/2}) E_i`` (full rank: per matrix, one
[rows, P/2 r] x [P/2 r, cols] product), Adam or SGD, weight decay. A member is named by one noise-table
offset (its A_i, B_i and dense noise are consecutive floats there), so checkpoints and the Ray wire carry
O(P) numbers, and the population forward (:mod:`neuroevo.policies.batched`) runs on the factors without
building any member's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from neuroevo.algorithms.es import ES, ESConfig
from neuroevo.algorithms.noise import NoiseTable, size_for
from neuroevo.algorithms.population import Population
from neuroevo.policies.lowrank import (
    Layout,
    LowRankParams,
    ParamBlock,
    aggregate,
    check_layout,
    dense_layout,
    noise_dim,
)


@dataclass
class LowRankPopulation(Population):
    """A :class:`~neuroevo.algorithms.population.Population` of EGGROLL members: member i's noise is the
    ``noise_dim(layout, rank)`` floats at ``offsets[i]``, cut into factors per :mod:`~neuroevo.policies.lowrank`.
    ``bases`` is the center [1, D]; ``layout`` the policy's parameter blocks; ``rank`` the perturbations' rank."""

    layout: Layout
    rank: int

    @property
    def noise_dim(self) -> int:
        return noise_dim(self.layout, self.rank)

    def perturbations(self, noise: NoiseTable, offsets: torch.Tensor) -> torch.Tensor:
        """The unscaled perturbations E_i [n, D], built (for ``materialize``; the forward never needs them)."""
        z = noise.get(offsets, self.noise_dim)
        zero = torch.zeros(self.num_params, dtype=z.dtype, device=z.device)
        return LowRankParams.from_noise(zero, self.layout, self.rank, z, torch.ones(len(offsets))).dense()

    def members(self, noise: NoiseTable, start: int = 0, stop: int | None = None) -> LowRankParams:
        """Members [start, stop) as :class:`~neuroevo.policies.lowrank.LowRankParams`: the center and each
        member's factors (O(n r (rows + cols)) floats), never [n, D]."""
        stop = len(self) if stop is None else stop
        index = torch.arange(start, stop)
        if bool((self.signs[index] == 0).any()) or bool((self.base_index[index] != 0).any()):
            raise ValueError("a low-rank population has one base row and signed members only")
        z = noise.get(self.offsets[index], self.noise_dim)
        scale = self.signs[index].to(device=z.device, dtype=z.dtype) * self.sigma
        return LowRankParams.from_noise(self.bases[0].to(z.device), self.layout, self.rank, z, scale)


@dataclass
class EGGROLLConfig(ESConfig):
    rank: int = 4
    """rank r of each weight matrix's perturbation (a matrix whose rank-r factors are not smaller than
    itself gets full-rank noise); the noise is scaled by 1/sqrt(r), so sigma means what it means in ES"""


class EGGROLL(ES):
    """ES with rank-r perturbations of every Linear / Conv2d weight matrix (EGGROLL), full-rank noise
    elsewhere; ``layout`` is the policy's ``param_layout()`` (None: all dense, i.e. ES)."""

    config_class = EGGROLLConfig
    name = "EGGROLL"
    takes_layout = True

    def __init__(self, center: torch.Tensor | int, config: Any = None, *, layout: Layout | None = None,
                 **kwargs: Any):
        self._requested_layout = layout
        super().__init__(center, config, **kwargs)

    def _validate_config(self) -> None:
        super()._validate_config()
        if self.config.rank < 1:
            raise ValueError(f"EGGROLL: rank must be at least 1, got {self.config.rank}")

    def _noise_dim(self) -> int:
        requested = self._requested_layout
        self.layout = check_layout(dense_layout(self.num_params) if requested is None else requested,
                                   self.num_params)
        return noise_dim(self.layout, self.config.rank)

    def _population(self, bases: torch.Tensor, base_index: torch.Tensor, offsets: torch.Tensor,
                    signs: torch.Tensor) -> LowRankPopulation:
        return LowRankPopulation(bases, base_index, offsets, signs.to(torch.int8), self.config.sigma,
                                 self.noise.seed, self.noise.size, self.layout, self.config.rank)

    def _weighted_noise(self, weights: torch.Tensor) -> torch.Tensor:
        z = self.noise.get(self.offsets, self.noise_dim)
        return aggregate(self.layout, self.config.rank, z, weights, self.num_params)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["layout"] = [[block.start, list(block.shape)] for block in self.layout]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        layout = tuple(ParamBlock(int(start), tuple(int(n) for n in shape)) for start, shape in state["layout"])
        self._requested_layout = check_layout(layout, self.num_params)
        self.noise_dim = self._noise_dim()
        size = size_for(self.noise_dim, self.config.noise_size)
        if (self.noise.seed, self.noise.size) != (self.config.noise_seed, size):
            self.noise = NoiseTable(self.config.noise_seed, size, self.device)

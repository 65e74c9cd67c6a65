"""A population held as its center plus per-member low-rank perturbations, never as [P, D].

EGGROLL (Sarkar et al. 2025, "Evolution Strategies at the Hyperscale", arXiv:2511.16652) perturbs each weight
matrix M (rows x cols) of a member by a rank-r product

    E = A B^T / sqrt(r),   A [rows, r], B [cols, r], entries standard normal,

so every entry of E has unit variance whatever r is (a sum of r unit-variance products, divided by sqrt(r)),
and a member costs r (rows + cols) numbers instead of rows x cols. A policy's flat parameters are cut into
:class:`ParamBlock` s by its ``param_layout()``: a block with a 2-D ``shape`` is a weight matrix (an MLP layer's
W, an ``nn.Linear`` weight, a ``nn.Conv2d`` weight seen as [out, in x kh x kw]) and gets the low-rank noise
where that is smaller than the matrix; every other block (biases, norms, any other parameter) gets plain
full-rank Gaussian noise.

One member's raw noise is a vector z of :func:`noise_dim` floats (a slice of the shared noise table): for each
block in order, A then B (low-rank blocks) or the block's own noise (dense blocks). :meth:`LowRankParams.from_noise`
turns the raw noise of n members into their factors, :meth:`LowRankParams.dense` into the [n, D] rows they
stand for, and :func:`aggregate` sums ``weights[i] * perturbation_i`` over members into one full-rank [D]
vector without building any member's perturbation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class ParamBlock:
    """One tensor of a policy's flat parameters: ``numel`` floats from ``start``. ``shape`` (rows, cols) marks
    a weight matrix stored row-major as [rows, cols] (low-rank noise); a 1-tuple marks any other tensor."""

    start: int
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def stop(self) -> int:
        return self.start + self.numel


Layout = tuple[ParamBlock, ...]


def dense_layout(num_params: int) -> Layout:
    """The layout of a vector with no known structure: one dense block (its noise is plain ES's)."""
    return (ParamBlock(0, (int(num_params),)),)


def check_layout(layout: Sequence[ParamBlock], num_params: int) -> Layout:
    """``layout`` as a tuple, after checking that its blocks tile [0, num_params) in order; one-line errors."""
    position = 0
    for block in layout:
        if block.start != position or len(block.shape) not in (1, 2) or min(block.shape) < 1:
            raise ValueError(f"parameter layout: block {block} does not start at {position} with a 1-D or 2-D shape")
        position = block.stop
    if position != num_params:
        raise ValueError(f"parameter layout covers {position} parameters, the vector has {num_params}")
    return tuple(layout)


def block_rank(block: ParamBlock, rank: int) -> int:
    """The rank block's noise gets: min(rank, rows, cols) for a matrix whose factors are smaller than the
    matrix itself, else 0 (dense noise: the block is a bias, a vector, or too thin to gain)."""
    if len(block.shape) != 2:
        return 0
    rows, cols = block.shape
    r = min(rank, rows, cols)
    return r if r * (rows + cols) < rows * cols else 0


def noise_dim(layout: Layout, rank: int) -> int:
    """Raw noise floats per member: r (rows + cols) per low-rank block, numel per dense block."""
    total = 0
    for block in layout:
        r = block_rank(block, rank)
        total += r * sum(block.shape) if r else block.numel
    return total


def _split(layout: Layout, rank: int, z: Tensor) -> list[tuple[Tensor, Tensor] | Tensor]:
    """Views of raw noise z [n, K]: (A [n, rows, r], B [n, cols, r]) per low-rank block, [n, numel] per dense."""
    n, position = z.shape[0], 0
    pieces: list[tuple[Tensor, Tensor] | Tensor] = []
    for block in layout:
        r = block_rank(block, rank)
        if r:
            rows, cols = block.shape
            a = z[:, position : position + rows * r].reshape(n, rows, r)
            position += rows * r
            b = z[:, position : position + cols * r].reshape(n, cols, r)
            position += cols * r
            pieces.append((a, b))
        else:
            pieces.append(z[:, position : position + block.numel])
            position += block.numel
    if position != z.shape[1]:
        raise ValueError(f"raw noise has {z.shape[1]} floats per member, the layout at rank {rank} takes {position}")
    return pieces


def aggregate(layout: Layout, rank: int, z: Tensor, weights: Tensor, num_params: int) -> Tensor:
    """``sum_i weights[i] * perturbation_i`` as a [D] vector, from raw noise z [n, K] and weights [n]: per
    low-rank block one [rows, n r] x [n r, cols] matmul (the full-rank update of EGGROLL), never a member's E."""
    out = torch.empty(num_params, dtype=z.dtype, device=z.device)
    weights = weights.to(z)
    for block, piece in zip(layout, _split(layout, rank, z), strict=True):
        if isinstance(piece, tuple):
            a, b = piece
            r = a.shape[2]
            rows, cols = block.shape
            weighted = (a * (weights / math.sqrt(r))[:, None, None]).permute(1, 0, 2).reshape(rows, -1)
            out[block.start : block.stop] = (weighted @ b.permute(0, 2, 1).reshape(-1, cols)).reshape(-1)
        else:
            out[block.start : block.stop] = weights @ piece
    return out


class LowRankParams:
    """P members ``center + perturbation_i``, held as the center [D] and per-block factors: the [P, D]
    population in shape only. ``factors[k]`` is (A [P, rows, r], B [P, cols, r]) for a low-rank block k, the
    member's matrix being ``center_k + A B^T``, or a [P, numel] delta for a dense block.

    Policies take it where they take params [P, D] (``policy(members, obs)``); those with a low-rank forward
    (MLP, Linear) never build a member's weights, the others run on :meth:`dense`.
    """

    def __init__(self, center: Tensor, layout: Layout, factors: Sequence[tuple[Tensor, Tensor] | Tensor]):
        self.center = center
        self.layout = layout
        self.factors = list(factors)
        first = self.factors[0]
        self.popsize = int((first[0] if isinstance(first, tuple) else first).shape[0])

    @classmethod
    def from_noise(cls, center: Tensor, layout: Layout, rank: int, z: Tensor, scale: Tensor) -> LowRankParams:
        """Members ``center + scale[i] * E(z[i])`` from raw noise z [n, K] and scale [n] (sign x sigma): E is
        A B^T / sqrt(r) per low-rank block, the block's noise itself per dense block."""
        scale = scale.to(z)
        factors: list[tuple[Tensor, Tensor] | Tensor] = []
        for piece in _split(layout, rank, z):
            if isinstance(piece, tuple):
                a, b = piece
                factors.append((a * (scale / math.sqrt(a.shape[2]))[:, None, None], b))
            else:
                factors.append(piece * scale[:, None])
        return cls(center, layout, factors)

    # -- the [P, D] tensor it stands for -----------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.popsize, self.center.numel()))

    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self) -> torch.dtype:
        return self.center.dtype

    @property
    def device(self) -> torch.device:
        return self.center.device

    def __len__(self) -> int:
        return self.popsize

    def is_floating_point(self) -> bool:
        return self.center.is_floating_point()

    def to(self, *args: Any, **kwargs: Any) -> LowRankParams:
        """The same members with every tensor moved or cast (``Tensor.to``'s arguments)."""
        factors = [
            (f[0].to(*args, **kwargs), f[1].to(*args, **kwargs)) if isinstance(f, tuple) else f.to(*args, **kwargs)
            for f in self.factors
        ]
        return LowRankParams(self.center.to(*args, **kwargs), self.layout, factors)

    def rows(self, start: int, stop: int) -> LowRankParams:
        """Members [start, stop), still low-rank."""
        factors = [
            (f[0][start:stop], f[1][start:stop]) if isinstance(f, tuple) else f[start:stop] for f in self.factors
        ]
        return LowRankParams(self.center, self.layout, factors)

    def select(self, index: Tensor) -> LowRankParams:
        """The members at ``index`` (a 1-D index tensor), still low-rank."""
        factors = [(f[0][index], f[1][index]) if isinstance(f, tuple) else f[index] for f in self.factors]
        return LowRankParams(self.center, self.layout, factors)

    def block(self, index: int) -> tuple[Tensor, tuple[Tensor, Tensor] | Tensor]:
        """Block ``index``'s center (viewed in its shape) and its factors."""
        block = self.layout[index]
        return self.center[block.start : block.stop].view(block.shape), self.factors[index]

    def dense(self) -> Tensor:
        """The members as params [P, D] (what the low-rank forward avoids; for tests and fallbacks)."""
        out = self.center.expand(self.popsize, -1).clone()
        for block, factor in zip(self.layout, self.factors, strict=True):
            if isinstance(factor, tuple):
                out[:, block.start : block.stop] += torch.bmm(factor[0], factor[1].transpose(1, 2)).flatten(1)
            else:
                out[:, block.start : block.stop] += factor
        return out

    def __repr__(self) -> str:
        return f"LowRankParams(P={self.popsize}, D={self.center.numel()}, blocks={len(self.layout)})"


#: what a policy's batched forward takes: params [P, D], or members held in low-rank form
Params = Tensor | LowRankParams

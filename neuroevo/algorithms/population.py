"""Members named by seeds: the noise-table optimizers (ES, ARS, GA, the chains, random search) and the compact
populations they give a distributed evaluator.

A :class:`Population` names every member by a base row, a noise-table offset and a sign, and :func:`materialize`
rebuilds any rows of it, bit for bit, in any process holding the same :class:`NoiseTable`: what a Ray worker
receives instead of parameter vectors, and what keeps the wire O(P) per generation. A
:class:`NoiseTableOptimizer` owns the table (only these optimizers allocate one) and asks in this form.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch

from neuroevo.algorithms.base import Optimizer, OptimizerConfig
from neuroevo.algorithms.noise import DEFAULT_SIZE, NoiseTable, size_for


@dataclass
class Population:
    """One generation's population, compactly: what a process holding the same noise table needs to
    rebuild any of its rows with :func:`materialize`, instead of the [P, D] tensor itself.

    Member r is ``bases[base_index[r]] + signs[r] * (sigma * noise[offsets[r] : offsets[r] + D])``, or the
    base row unchanged where ``signs[r] == 0``. ES and ARS: ``bases`` is the center [1, D], the P/2
    offsets appear twice, signs +1 then -1. GA: ``bases`` is the elites [C, D] then the parents [T, D];
    elites have sign 0, a child is (parent, offset) with sign +1. Random starting points (``init =
    "random"``: the GA's generation 0, random search): ``scale`` [D] multiplies each slice elementwise, so a
    member is the root plus a draw from the policy's init distribution.

    bases: [B, D] float on the optimizer's device; base_index, offsets: [P] int64 and signs: [P] int8,
    on the CPU. ``noise_seed`` and ``noise_size`` name the :class:`NoiseTable`.
    """

    bases: torch.Tensor
    base_index: torch.Tensor
    offsets: torch.Tensor
    signs: torch.Tensor
    sigma: float
    noise_seed: int
    noise_size: int
    scale: torch.Tensor | None = field(default=None, kw_only=True)

    def __len__(self) -> int:
        return self.base_index.numel()

    @property
    def num_params(self) -> int:
        return self.bases.shape[1]

    def perturbations(self, noise: NoiseTable, offsets: torch.Tensor) -> torch.Tensor:
        """The unscaled perturbations [n, D] named by ``offsets`` [n]: slices of the noise table."""
        return noise.get(offsets, self.num_params)

    def members(self, noise: NoiseTable, start: int = 0, stop: int | None = None) -> Any:
        """Rows [start, stop) in the form a policy's batched forward takes: params [n, D] here (a subclass
        may keep them compact, as EGGROLL's low-rank members)."""
        return materialize(self, noise, start, stop)


def tensor_digest(*tensors: torch.Tensor, extra: str = "") -> str:
    """A 128-bit hash of the tensors' bytes, in order, then of ``extra``."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(extra.encode())
    return digest.hexdigest()


def gather_rows(population: Population, noise: NoiseTable, index: torch.Tensor) -> torch.Tensor:
    """The members ``index`` [n] (int64) of ``population``: params [n, D] on the noise table's device."""
    index = torch.as_tensor(index, dtype=torch.int64).reshape(-1).cpu()
    device = noise.device
    base = population.bases.to(device)[population.base_index[index].to(device)]
    signs = population.signs[index]
    mutated = signs != 0
    if not bool(mutated.any()):
        return base
    # The same expression ask() has always evaluated: center + sigma * eps, center + -(sigma * eps).
    eps = population.perturbations(noise, torch.where(mutated, population.offsets[index], 0))
    step = population.sigma * eps
    if population.scale is not None:  # random starting points: the policy's init std, parameter by parameter
        step = step * population.scale.to(device=device, dtype=step.dtype)
    rows = base + step * signs.to(device=device, dtype=step.dtype)[:, None]
    return rows if bool(mutated.all()) else torch.where(mutated.to(device)[:, None], rows, base)


def materialize(population: Population, noise: NoiseTable, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Rows [start, stop) of the population (default: all): params [stop - start, D] on the noise
    table's device, bit-identical to the same rows of the optimizer's ``ask()``."""
    stop = len(population) if stop is None else stop
    return gather_rows(population, noise, torch.arange(start, stop))


class _PopulationRows:
    """A population's rows built on demand: what ``tell`` indexes when ``ask_population`` built no
    [P, D] tensor (``rows[i]`` -> [D], ``rows[index]`` -> [n, D])."""

    def __init__(self, population: Population, noise: NoiseTable):
        self.population = population
        self.noise = noise

    def __len__(self) -> int:
        return len(self.population)

    def __getitem__(self, index: Any) -> torch.Tensor:
        index = torch.as_tensor(index)
        rows = gather_rows(self.population, self.noise, index)
        return rows[0] if index.ndim == 0 else rows


@dataclass
class NoiseTableConfig(OptimizerConfig):
    """Settings of the optimizers whose perturbations are slices of the shared noise table."""

    noise_size: int = DEFAULT_SIZE
    """floats in the shared noise table (at least 4 x the parameter count: a larger table is used where D
    needs one, see :func:`~neuroevo.algorithms.noise.size_for`)"""
    noise_seed: int = 0
    """seed of the shared noise table (the same for every run, so that processes share it)"""


class NoiseTableOptimizer(Optimizer):
    """Base of the optimizers whose members are a base row plus ``sigma`` times a slice of the shared noise
    table: ``_ask`` returns a :class:`Population` (or params [P, D] for a generation without that form, e.g.
    random starting states); :meth:`ask_population` hands it out as it is, :meth:`ask` materializes it."""

    def __init__(self, center: torch.Tensor | int, config: Any = None, **kwargs: Any):
        super().__init__(center, config, **kwargs)
        self.noise_dim = self._noise_dim()
        self.noise = NoiseTable(self.config.noise_seed, size_for(self.noise_dim, self.config.noise_size),
                                self.device)

    def _noise_dim(self) -> int:
        """Noise-table floats per member: D here (a slice is the perturbation itself)."""
        return self.num_params

    def _validate_config(self) -> None:
        super()._validate_config()
        if self.config.noise_size <= 0:
            raise ValueError(f"{self.name}: noise_size must be positive, got {self.config.noise_size}")

    def ask_population(self) -> Population | torch.Tensor:
        """The population to evaluate next, compactly: no [P, D] tensor is built (``tell`` rebuilds only the
        rows it keeps). ``materialize(population, optimizer.noise)`` equals ``ask()``."""
        return super().ask_population()

    def _rows(self, population: Population | torch.Tensor) -> torch.Tensor:
        return population if isinstance(population, torch.Tensor) else materialize(population, self.noise)

    def _member_rows(self, pending: Population | torch.Tensor) -> _PopulationRows | torch.Tensor:
        return _PopulationRows(pending, self.noise) if isinstance(pending, Population) else pending

    def _population(self, bases: torch.Tensor, base_index: torch.Tensor, offsets: torch.Tensor,
                    signs: torch.Tensor) -> Population:
        """A :class:`Population` over this optimizer's noise table and sigma."""
        return Population(bases, base_index, offsets, signs.to(torch.int8), self.config.sigma, self.noise.seed,
                          self.noise.size)


class MirroredOptimizer(NoiseTableOptimizer):
    """Base of the optimizers that sample antithetic pairs (ES, ARS): P/2 perturbations eps_i, member
    i is center + sigma * eps_i and member i + P/2 is center - sigma * eps_i; ``offsets`` [P/2] name the
    eps_i in the noise table. Their configs have ``lr``."""

    def __init__(self, center: torch.Tensor | int, config: Any = None, **kwargs: Any):
        super().__init__(center, config, **kwargs)
        self.offsets = torch.empty(0, dtype=torch.int64)

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.popsize < 2 or c.popsize % 2:
            raise ValueError(f"{self.name}: popsize must be even (antithetic pairs), got {c.popsize}")
        if c.lr <= 0:
            raise ValueError(f"{self.name}: lr must be positive, got {c.lr}")

    def _ask(self) -> Population:
        half = self.popsize // 2
        self.offsets = self.noise.sample_offsets(half, self.noise_dim, self.generator)
        signs = torch.cat([torch.ones(half), -torch.ones(half)])
        return self._population(self.center[None], torch.zeros(self.popsize, dtype=torch.int64),
                                self.offsets.repeat(2), signs)



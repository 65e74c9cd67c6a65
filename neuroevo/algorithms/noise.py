"""The shared noise table (Salimans et al. 2017, section 2.1).

One block of standard-normal floats, generated from a seed. A perturbation of a D-dimensional vector
is the slice ``table[offset : offset + D]``, so a member of the population is named by one integer:
any process holding the same table (same ``seed`` and ``size``) regenerates it from its offset, and a
distributed evaluator ships offsets instead of parameter vectors.
"""

from __future__ import annotations

import functools

import torch

DEFAULT_SIZE = 2**24  # 16.8M floats, 64 MiB in float32


def size_for(dim: int, size: int = DEFAULT_SIZE) -> int:
    """The table size for ``dim`` parameters: ``size`` where it holds 4 x ``dim`` floats (slices spread
    enough that members are not near-copies), else the next power of two that does (256 MiB at D = 16.8M):
    the table grows with D instead of capping it, and stays as it was wherever it already fit."""
    if 4 * dim <= size:
        return int(size)
    return 1 << (4 * dim - 1).bit_length()


@functools.lru_cache(maxsize=4)
def _cpu_table(seed: int, size: int) -> torch.Tensor:
    # Generated on the CPU so that every device and process gets bit-identical noise.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(size, generator=generator, dtype=torch.float32)


class NoiseTable:
    """``size`` standard-normal floats from ``seed``, resident on ``device``.

    Tables are cached per process, so optimizers and workers with the same (seed, size) share one.
    """

    def __init__(self, seed: int = 0, size: int = DEFAULT_SIZE, device=None):
        if size <= 0:
            raise ValueError(f"noise table size must be positive, got {size}")
        self.seed = int(seed)
        self.size = int(size)
        self.device = torch.device(device if device is not None else "cpu")
        self.table = _cpu_table(self.seed, self.size).to(self.device)

    def check_dim(self, dim: int) -> None:
        # A slice must fit, and offsets must be spread enough that members are not near-copies.
        if 4 * dim > self.size:
            raise ValueError(
                f"noise table of {self.size} floats is too small for {dim} parameters; "
                f"use a noise_size of at least {4 * dim}"
            )

    def sample_offsets(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random offsets, int64 [n] on the CPU, each a valid start for a ``dim``-long slice."""
        self.check_dim(dim)
        return torch.randint(0, self.size - dim + 1, (n,), generator=generator, dtype=torch.int64)

    def get(self, offsets: torch.Tensor, dim: int) -> torch.Tensor:
        """The perturbations named by ``offsets`` [n]: a float32 tensor [n, dim] on the table's device."""
        windows = self.table.unfold(0, dim, 1)  # [size - dim + 1, dim] view, no copy
        return windows.index_select(0, offsets.to(self.device))

"""Counter-based randomness: every random number is a pure function of a seed and a counter.

An env's start state is a function of (episode seed, reset count), an optimizer's draws of (run seed,
generation): never of which batch slot, worker, device or process produced them, nor of what ran
before. That is what makes a resumed or distributed run take the same trajectory as a single one.
"""

from __future__ import annotations

import math

import torch

_MASK64 = (1 << 64) - 1


def _to_int64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


_GOLDEN = _to_int64(0x9E3779B97F4A7C15)
_MIX1 = _to_int64(0xBF58476D1CE4E5B9)
_MIX2 = _to_int64(0x94D049BB133111EB)


def _srl(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift on int64 (torch's ``>>`` is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finalizer on int64 tensors (wrapping arithmetic), elementwise."""
    x = x + _GOLDEN
    x = (x ^ _srl(x, 30)) * _MIX1
    x = (x ^ _srl(x, 27)) * _MIX2
    return x ^ _srl(x, 31)


def hash_uniform(
    seeds: torch.Tensor, counters: torch.Tensor, k: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uniform [0, 1) numbers, [N, k] of ``dtype``, each a pure function of (seeds[n], counters[n], j)."""
    j = torch.arange(k, device=seeds.device, dtype=torch.int64)
    key = splitmix64(splitmix64(seeds.to(torch.int64)) ^ counters.to(torch.int64))
    bits = splitmix64(key[:, None] * 1000003 + j[None, :])
    # The top bits of the word that the dtype's significand holds exactly (53 for float64, 24 for float32, as in
    # numpy's generators; 11 for float16, 8 for bfloat16), times 2**-bits: every value in [0, 1), none rounded.
    significand = 1 - int(math.log2(torch.finfo(dtype).eps))  # eps = 2**-(significand bits - 1)
    return _srl(bits, 64 - significand).to(dtype) * (1.0 / (1 << significand))


_SEED_MASK = (1 << 62) - 1


def derive_seed(seed: int, stream: int) -> int:
    """A seed in [0, 2**62) for ``stream`` (e.g. a generation) of ``seed``, as a pure function of both."""
    x = splitmix64(torch.tensor([_to_int64(int(seed))], dtype=torch.int64))
    x = splitmix64(x ^ _to_int64(int(stream)))
    return int(x) & _SEED_MASK

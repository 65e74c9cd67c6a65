"""Counter-based randomness: splitmix64 against its reference, hash_uniform's range, purity and spread,
derive_seed's range and distinctness."""

import itertools

import pytest
import torch

from neuroevo.seeding import derive_seed, hash_uniform, splitmix64

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def ref_splitmix64(x: int) -> int:
    """Vigna's splitmix64 (one step: add the golden gamma, then the finalizer) on unsigned 64-bit ints."""
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def as_int64(x: int) -> int:
    x &= MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


def as_uint64(x: int) -> int:
    return x & MASK64


# -- splitmix64 -----------------------------------------------------------------------------------


def test_splitmix64_gives_the_published_outputs():
    # The generator seeded with 0 starts 0xe220a8397b1dcdaf; seeded with 1234567 it gives the five numbers of
    # the reference implementation's test vector (output n is the finalizer at seed + (n - 1) * gamma).
    assert as_uint64(int(splitmix64(torch.tensor([0]))[0])) == 0xE220A8397B1DCDAF
    states = torch.tensor([as_int64(1234567 + n * GOLDEN) for n in range(5)])
    assert [as_uint64(int(v)) for v in splitmix64(states)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]


def test_splitmix64_matches_the_reference_with_wrapping():
    inputs = [0, 1, -1, 42, -(1 << 63), (1 << 63) - 1, as_int64(GOLDEN), -123456789012345, 2**40 + 7]
    out = splitmix64(torch.tensor(inputs, dtype=torch.int64))
    assert out.dtype == torch.int64 and out.shape == (len(inputs),)
    assert [as_uint64(int(v)) for v in out] == [ref_splitmix64(as_uint64(x)) for x in inputs]


def test_splitmix64_is_elementwise_over_any_shape():
    x = torch.arange(-6, 6, dtype=torch.int64).reshape(3, 4) * 1_000_003
    out = splitmix64(x)
    assert out.shape == (3, 4)
    assert torch.equal(out.reshape(-1), splitmix64(x.reshape(-1)))
    assert torch.equal(out[1], splitmix64(x[1].clone()))


# -- hash_uniform ---------------------------------------------------------------------------------


def ref_hash_uniform(seed: int, counter: int, j: int, bits: int) -> float:
    """The word hash_uniform documents: splitmix64 of (splitmix64(splitmix64(seed) ^ counter) * 1000003 + j),
    its top ``bits`` bits scaled into [0, 1)."""
    key = ref_splitmix64(ref_splitmix64(as_uint64(seed)) ^ as_uint64(counter))
    word = ref_splitmix64((key * 1000003 + j) & MASK64)
    return (word >> (64 - bits)) / 2**bits


@pytest.mark.parametrize(("dtype", "bits"), [(torch.float32, 24), (torch.float64, 53)])
def test_hash_uniform_shape_dtype_and_reference_values(dtype, bits):
    seeds = torch.tensor([0, 7, -3, (1 << 62) + 5])
    counters = torch.tensor([0, 1, 12345, -2])
    u = hash_uniform(seeds, counters, 3, dtype=dtype)
    assert u.shape == (4, 3) and u.dtype == dtype
    pairs = zip(seeds.tolist(), counters.tolist(), strict=True)
    expected = [[ref_hash_uniform(s, c, j, bits) for j in range(3)] for s, c in pairs]
    assert u.tolist() == expected  # exact: 24 or 53 bits are exactly representable


def test_float32_draws_are_the_float64_draws_truncated_to_24_bits():
    seeds, counters = torch.arange(1000), torch.arange(1000) % 7
    u32 = hash_uniform(seeds, counters, 5, dtype=torch.float32)
    u64 = hash_uniform(seeds, counters, 5, dtype=torch.float64)
    assert torch.equal(u32.double(), torch.floor(u64 * 2**24) / 2**24)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hash_uniform_is_roughly_uniform_on_0_1(dtype):
    n = 100_000
    u = hash_uniform(torch.arange(n) * 31 + 5, torch.arange(n) % 13, 2, dtype=dtype).double()
    assert (u >= 0).all() and (u < 1).all()
    # mean 1/2 and variance 1/12: allow 6 standard errors (deterministic draws, so never flaky, yet a
    # biased or constant generator is far outside)
    se = (1 / 12 / u.numel()) ** 0.5
    assert abs(u.mean().item() - 0.5) < 6 * se
    assert abs(u.var().item() - 1 / 12) < 0.002
    counts = torch.histc(u, bins=10, min=0.0, max=1.0)
    expected = u.numel() / 10  # 20,000 per bin, binomial sd ~ 134
    assert (counts - expected).abs().max().item() < 6 * (expected * 0.9) ** 0.5
    # the two columns and neighbouring rows are uncorrelated
    assert abs(torch.corrcoef(u.T)[0, 1].item()) < 0.02
    assert abs(torch.corrcoef(torch.stack([u[:-1, 0], u[1:, 0]]))[0, 1].item()) < 0.02


def test_a_row_depends_only_on_its_seed_and_counter():
    alone = hash_uniform(torch.tensor([11]), torch.tensor([4]), 6)
    seeds = torch.tensor([1, 2, 3, 4, 5, 11, 6, 7])
    counters = torch.tensor([0, 0, 9, 9, 4, 4, 1, 2])
    in_batch = hash_uniform(seeds, counters, 6)
    assert torch.equal(in_batch[5], alone[0])  # another batch position and batch size
    assert torch.equal(hash_uniform(seeds.flip(0), counters.flip(0), 6), in_batch.flip(0))
    # column j does not depend on how many columns are drawn
    assert torch.equal(hash_uniform(seeds, counters, 2), in_batch[:, :2])
    # the input integer dtype does not matter
    assert torch.equal(hash_uniform(seeds.to(torch.int32), counters.to(torch.int32), 6), in_batch)


def test_different_counters_seeds_and_columns_give_different_numbers():
    n = 64
    seed = torch.full((n,), 123)
    by_counter = hash_uniform(seed, torch.arange(n), 4, dtype=torch.float64)
    assert by_counter.unique().numel() == by_counter.numel()  # no repeats across counters or columns
    by_seed = hash_uniform(torch.arange(n), torch.zeros(n, dtype=torch.int64), 4, dtype=torch.float64)
    assert by_seed.unique().numel() == by_seed.numel()
    # (seed, counter) is not a sum or swap of its parts
    a = hash_uniform(torch.tensor([1, 2]), torch.tensor([2, 1]), 4, dtype=torch.float64)
    assert not torch.equal(a[0], a[1])


# -- derive_seed ----------------------------------------------------------------------------------


def test_derive_seed_is_the_documented_pure_function():
    for seed, stream in [(0, 0), (1, 0), (0, 1), (7, -1), (-5, 3), (2**70 + 9, 2**65)]:
        expected = ref_splitmix64(ref_splitmix64(as_uint64(seed)) ^ as_uint64(stream)) & ((1 << 62) - 1)
        assert derive_seed(seed, stream) == expected
        assert derive_seed(seed, stream) == derive_seed(seed, stream)


def test_derive_seed_range_and_big_or_negative_inputs():
    for seed, stream in [(0, 0), (-1, -1), (-(2**63), 2**63 - 1), (2**64 - 1, 0), (10**30, -(10**30))]:
        value = derive_seed(seed, stream)
        assert isinstance(value, int) and 0 <= value < 2**62
    # inputs are taken modulo 2**64, as int64 words
    assert derive_seed(2**64 + 5, 3) == derive_seed(5, 3)
    assert derive_seed(-1, 3) == derive_seed(2**64 - 1, 3)
    assert derive_seed(5, -1) == derive_seed(5, 2**64 - 1)
    # the trainer's evaluation stream (-1) is not generation 0 nor 1
    assert len({derive_seed(5, -1), derive_seed(5, 0), derive_seed(5, 1)}) == 3


def test_derive_seed_has_no_collisions_over_10k_pairs():
    pairs = list(itertools.product(range(-50, 50), range(-1, 99)))
    values = {derive_seed(seed, stream) for seed, stream in pairs}
    assert len(values) == len(pairs) == 10_000
    # nor does swapping seed and stream give the same seed
    assert derive_seed(3, 8) != derive_seed(8, 3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_draws_stay_inside_0_1(dtype):
    u = hash_uniform(torch.arange(1000), torch.zeros(1000, dtype=torch.int64), 400, dtype=dtype)
    assert u.dtype == dtype and bool(torch.isfinite(u).all())
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.float().mean()) - 0.5) < 0.01

"""ObsNormalizer: Chan et al.'s merge is split-independent; masks, clip and state round trips."""

import torch

from neuroevo.policies import ObsNormalizer


def _obs(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + torch.linspace(-5, 5, shape[-1])


def test_merge_of_halves_equals_whole():
    obs = _obs(7, 50, 4).float()
    whole = ObsNormalizer(4)
    whole.update(obs)
    parts = ObsNormalizer(4)
    for chunk in (obs[:3], obs[3:5, :10], obs[3:5, 10:], obs[5:]):  # uneven splits, merged one by one
        parts.merge(ObsNormalizer.batch_stats(chunk))
    assert parts.count.item() == whole.count.item() == 350
    torch.testing.assert_close(parts.mean, whole.mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(parts.var, whole.var, atol=1e-10, rtol=0)
    flat = obs.reshape(-1, 4).double()
    torch.testing.assert_close(whole.mean, flat.mean(0), atol=1e-10, rtol=0)
    torch.testing.assert_close(whole.var, flat.var(0, correction=0), atol=1e-10, rtol=0)


def test_merge_of_two_normalizers_stats():
    # What a process gets from another: its (count, mean, m2).
    a, b, whole = ObsNormalizer(3), ObsNormalizer(3), ObsNormalizer(3)
    obs = _obs(100, 3)
    a.update(obs[:37])
    b.update(obs[37:])
    whole.update(obs)
    a.merge(b.stats())
    torch.testing.assert_close(a.mean, whole.mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(a.var, whole.var, atol=1e-10, rtol=0)


def test_masked_rows_are_ignored():
    obs = _obs(6, 10, 3)
    mask = torch.rand(6, 10, generator=torch.Generator().manual_seed(1)) > 0.4
    obs_with_garbage = obs.clone()
    obs_with_garbage[~mask] = float("nan")
    count, mean, m2 = ObsNormalizer.batch_stats(obs_with_garbage, mask)
    kept = obs[mask]
    assert count.item() == mask.sum().item()
    torch.testing.assert_close(mean, kept.mean(0), atol=1e-10, rtol=0)
    torch.testing.assert_close(m2 / count, kept.var(0, correction=0), atol=1e-10, rtol=0)
    # An all-masked batch changes nothing.
    norm = ObsNormalizer(3)
    norm.update(obs)
    before = [t.clone() for t in norm.stats()]
    norm.update(obs_with_garbage, torch.zeros(6, 10, dtype=torch.bool))
    assert all(torch.equal(x, y) for x, y in zip(before, norm.stats(), strict=True))


def test_identity_before_data_and_clip():
    norm = ObsNormalizer(2, clip=5.0)
    obs = torch.tensor([[0.5, -7.0], [9.0, 1.0]])
    assert torch.equal(norm.normalize(obs), torch.tensor([[0.5, -5.0], [5.0, 1.0]]))
    norm.update(_obs(1000, 2))
    big = torch.full((3, 2), 1e6)
    out = norm.normalize(big)
    assert out.dtype == big.dtype and out.shape == big.shape and torch.equal(out, torch.full((3, 2), 5.0))
    x = _obs(20, 2, seed=3).float()
    expected = ((x.double() - norm.mean) / torch.sqrt(norm.var + norm.eps)).clamp(-5, 5)
    torch.testing.assert_close(norm.normalize(x), expected.float())


def test_state_dict_round_trip(tmp_path):
    norm = ObsNormalizer(3, clip=2.5)
    norm.update(_obs(40, 3))
    torch.save(norm.state_dict(), tmp_path / "norm.pt")
    loaded = ObsNormalizer(3)
    loaded.load_state_dict(torch.load(tmp_path / "norm.pt", weights_only=True))
    assert loaded.clip == 2.5
    assert all(torch.equal(x, y) for x, y in zip(norm.stats(), loaded.stats(), strict=True))
    x = _obs(5, 3, seed=4).float()
    assert torch.equal(norm.normalize(x), loaded.normalize(x))
    assert loaded.to("cpu") is loaded

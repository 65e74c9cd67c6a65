"""Conv policies over a population (NatureCNN and the small model): the batched forward equals each member's own
torch module, EGGROLL's low-rank members equal their materialized rows, and the parameter counts are the papers'."""

import pytest
import torch

from neuroevo.algorithms import EGGROLL, materialize
from neuroevo.policies import ConvPolicy, PolicyConfig, policy_from_spec
from neuroevo.policies.lowrank import LowRankParams

SHAPE = (4, 84, 84)


def _pixels(*shape, seed=0):
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("arch, padding, count", [("nature", "valid", 1_693_362), ("nature", "same", 4_052_658),
                                                  ("small", "valid", 680_770)])
def test_parameter_counts_are_the_papers(arch, padding, count):
    """Nature network, 18 actions: 1.69M with valid padding (Mnih et al. 2015, SB3's NatureCNN), 4.05M with
    TensorFlow's SAME (the "over four million" of Such et al. 2017); the 2013 network 0.68M."""
    assert ConvPolicy(SHAPE, 18, arch, padding).num_params == count


@pytest.mark.parametrize("arch, padding", [("nature", "valid"), ("nature", "same"), ("small", "valid")])
def test_the_population_forward_equals_each_members_module(arch, padding):
    policy = ConvPolicy(SHAPE, 6, arch, padding)
    gen = torch.Generator().manual_seed(1)
    params = torch.stack([policy.init_params(gen) for _ in range(3)])
    obs = _pixels(3, 2, policy.obs_dim)  # uint8, as the atari backend gives them
    out = policy(params, obs)
    assert out.shape == (3, 2, 6)
    for p in range(3):
        expected = policy.to_module(params[p])(obs[p].float())
        torch.testing.assert_close(out[p], expected, rtol=1e-4, atol=1e-5)


def test_low_rank_members_equal_their_materialized_rows():
    policy = ConvPolicy((2, 36, 36), 4, "small")
    center = policy.init_params(torch.Generator().manual_seed(0))
    opt = EGGROLL(center, layout=policy.param_layout(), popsize=4, rank=2, sigma=0.1, noise_size=2**21, seed=3)
    population = opt.ask_population()
    members = population.members(opt.noise)
    assert isinstance(members, LowRankParams)
    obs = _pixels(4, 2, policy.obs_dim, seed=2)
    dense = materialize(population, opt.noise)
    torch.testing.assert_close(policy(members, obs), policy(dense, obs), rtol=1e-4, atol=1e-4)


def test_config_builds_it_from_the_image_shape_and_refuses_flat_observations():
    import gymnasium as gym

    image = gym.spaces.Box(0, 255, SHAPE, dtype="uint8")
    policy = PolicyConfig(kind="cnn", arch="small").build(28224, gym.spaces.Discrete(18), image)
    assert isinstance(policy, ConvPolicy) and policy_from_spec(policy.spec()) == policy
    assert PolicyConfig().describing(policy).arch == "small"
    with pytest.raises(ValueError, match="needs image observations"):
        PolicyConfig(kind="cnn").build(4, gym.spaces.Discrete(2), gym.spaces.Box(-1, 1, (4,)))
    with pytest.raises(ValueError, match="unknown conv architecture"):
        ConvPolicy(SHAPE, 2, "huge")
    with pytest.raises(ValueError, match="too small"):
        ConvPolicy((1, 10, 10), 2)


def test_init_std_is_the_std_of_init_params_draws():
    """What init = 'random' (the GA's generation 0, random search) draws with: per parameter, the std of the
    policy's own init; 0 where the init is fixed (VBN's gains and biases)."""
    policy = ConvPolicy((2, 36, 36), 4, "small", vbn=8)
    draws = torch.stack([policy.init_params(torch.Generator().manual_seed(s)) for s in range(200)])
    std = policy.init_std()
    fixed = std == 0
    assert bool(fixed.any()) and torch.equal(draws[:, fixed], draws[:1, fixed].expand(200, -1))
    ratio = draws[:, ~fixed].std(0) / std[~fixed]
    assert 0.9 < float(ratio.mean()) < 1.1 and float(ratio.min()) > 0.6

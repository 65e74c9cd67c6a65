"""The population layers (neuroevo.policies.batched): every path equals the per-member forward of the weights
it stands for, and the low-rank policy forward equals the forward of the materialized perturbed weights."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuroevo.algorithms import EGGROLL, materialize
from neuroevo.policies import MLP, Linear, ModulePolicy, batched
from neuroevo.policies.lowrank import LowRankParams, ParamBlock, noise_dim

P, N = 5, 3


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_linear_paths_equal_the_member_loop():
    x, W, b = _randn(P, N, 7), _randn(7, 6, seed=1), _randn(6, seed=2)
    down, up, db = _randn(P, 7, 2, seed=3), _randn(P, 6, 2, seed=4), _randn(P, 6, seed=5)
    member_w = W + torch.bmm(down, up.transpose(1, 2))  # [P, 7, 6], what the low-rank path never builds
    expected = torch.stack([x[p] @ member_w[p] + b + db[p] for p in range(P)])
    torch.testing.assert_close(batched.linear_low_rank(x, W, b, down, up, db), expected)
    torch.testing.assert_close(batched.linear(x, member_w, b + db), expected)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (4, 0)])
def test_conv2d_paths_equal_the_member_loop(stride, padding):
    C, O, k = 3, 4, 3
    x, W, b = _randn(P, N, C, 9, 9), 0.3 * _randn(O, C, k, k, seed=1), _randn(O, seed=2)
    down, up, db = _randn(P, C * k * k, 2, seed=3), 0.3 * _randn(P, O, 2, seed=4), _randn(P, O, seed=5)
    member_w = W + torch.bmm(up, down.transpose(1, 2)).view(P, O, C, k, k)
    member_b = b + db
    expected = torch.stack([F.conv2d(x[p], member_w[p], member_b[p], stride=stride, padding=padding)
                            for p in range(P)])
    got = batched.conv2d_low_rank(x, W, b, down, up, db, stride=stride, padding=padding)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.conv2d(x, member_w, member_b, stride, padding), expected, rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(batched.conv2d_im2col(x, member_w, member_b, stride, padding), expected,
                               rtol=1e-4, atol=1e-5)


POLICIES = [MLP(6, 3, hidden=(16, 8)), Linear(9, 7), MLP(5, 2, hidden=(12,), activation="relu")]


@pytest.mark.parametrize("policy", POLICIES)
def test_low_rank_policy_forward_equals_the_forward_of_the_materialized_members(policy):
    center = policy.init_params(torch.Generator().manual_seed(0)) + 0.1
    opt = EGGROLL(center, layout=policy.param_layout(), popsize=8, rank=2, sigma=0.2, noise_size=4096, seed=3)
    population = opt.ask_population()
    members = population.members(opt.noise)
    assert isinstance(members, LowRankParams)
    obs = _randn(8, 4, policy.obs_dim, seed=9)
    dense = materialize(population, opt.noise)
    torch.testing.assert_close(policy(members, obs), policy(dense, obs), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(members.dense(), dense)
    shard = members.rows(2, 5)
    torch.testing.assert_close(policy(shard, obs[2:5]), policy(dense[2:5], obs[2:5]), rtol=1e-5, atol=1e-5)
    picked = torch.tensor([6, 1, 3])  # the members a rollout's forward keeps once the others have finished
    torch.testing.assert_close(members.select(picked).dense(), dense[picked])


def test_module_policy_layout_marks_linear_and_conv_weights_and_falls_back_to_dense_elsewhere():
    net = nn.Sequential(nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                        nn.LayerNorm(16), nn.Linear(16, 3))
    policy = ModulePolicy(net, obs_dim=36)
    layout = policy.param_layout()
    assert [b.shape for b in layout] == [(4, 9), (4,), (16,), (16,), (3, 16), (3,)]
    opt = EGGROLL(policy.init_params(), layout=layout, popsize=4, rank=1, sigma=0.1, noise_size=4096)
    assert opt.noise_dim == noise_dim(layout, 1) == (4 + 9) + 4 + 16 + 16 + (3 + 16) + 3
    population = opt.ask_population()
    obs = _randn(4, 2, 36)
    dense = materialize(population, opt.noise)
    torch.testing.assert_close(policy(population.members(opt.noise), obs), policy(dense, obs))


def test_a_layout_that_does_not_tile_the_parameters_is_refused():
    with pytest.raises(ValueError, match="does not start at 4"):
        EGGROLL(torch.zeros(10), layout=(ParamBlock(0, (2, 2)), ParamBlock(5, (5,))))
    with pytest.raises(ValueError, match="covers 8 parameters, the vector has 10"):
        EGGROLL(torch.zeros(10), layout=(ParamBlock(0, (2, 4)),))

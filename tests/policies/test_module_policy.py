"""ModulePolicy over user modules: vmap(functional_call) against per-member functional calls."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from neuroevo.policies import ModulePolicy

P, E = 5, 3


class NormNet(nn.Module):
    """A user module with a LayerNorm and a buffer used in forward."""

    def __init__(self, obs_dim: int = 4, act_dim: int = 2):
        super().__init__()
        self.inp = nn.Linear(obs_dim, 16)
        self.norm = nn.LayerNorm(16)
        self.out = nn.Linear(16, act_dim)
        self.register_buffer("scale", torch.full((act_dim,), 3.0))

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.inp(x)))) * self.scale


def _split(policy: ModulePolicy, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, p in policy.module.named_parameters():
        out[name] = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


def test_layernorm_module_equals_per_member_functional_calls():
    torch.manual_seed(0)
    policy = ModulePolicy(NormNet(), obs_dim=4)
    assert (policy.obs_dim, policy.act_dim) == (4, 2)
    assert policy.num_params == sum(p.numel() for p in policy.module.parameters())
    params = torch.randn(P, policy.num_params)
    obs = torch.randn(P, E, 4)
    out = policy(params, obs)
    expected = torch.stack(
        [functional_call(policy.module, _split(policy, params[i]), (obs[i],)) for i in range(P)]
    )
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # to_module gives the same numbers, and the buffer is kept as it is.
    member = policy.to_module(params[2])
    torch.testing.assert_close(member(obs[2]), out[2], atol=1e-5, rtol=1e-5)
    assert torch.equal(member.scale, policy.module.scale)


def test_init_params_and_to_module_do_not_alias():
    module = NormNet()
    policy = ModulePolicy(module, obs_dim=4)
    center = policy.init_params()
    assert torch.equal(center, nn.utils.parameters_to_vector(module.parameters()))
    flat = torch.randn(policy.num_params)
    member = policy.to_module(flat)
    flat.zero_()
    center.zero_()
    # Neither the returned module nor the user's module share memory with the vectors handed around.
    assert member.inp.weight.abs().sum() > 0 and module.inp.weight.abs().sum() > 0
    assert member is not module and member.inp.weight is not module.inp.weight


def test_tied_parameters_counted_once():
    shared = nn.Linear(3, 3)
    module = nn.Sequential(shared, nn.Tanh(), shared)
    policy = ModulePolicy(module, obs_dim=3)
    assert policy.num_params == 12
    params = torch.randn(P, 12)
    obs = torch.randn(P, E, 3)
    expected = torch.stack([policy.to_module(params[i])(obs[i]) for i in range(P)])
    torch.testing.assert_close(policy(params, obs), expected, atol=1e-5, rtol=1e-5)


def test_bad_module_output_raises():
    with pytest.raises(ValueError, match=r"maps \[1, 4\] zeros to \(2,\)"):
        ModulePolicy(nn.Sequential(nn.Linear(4, 2), nn.Flatten(0)), obs_dim=4)


def test_equality_and_spec():
    module = NormNet()
    assert ModulePolicy(module, 4) == ModulePolicy(module, 4)
    assert ModulePolicy(module, 4) != ModulePolicy(NormNet(), 4)
    policy = ModulePolicy(module, 4)
    spec = policy.spec()
    assert spec["kind"] == "module" and spec["module_class"] == "NormNet"
    assert (spec["obs_dim"], spec["act_dim"], spec["num_params"]) == (4, 2, policy.num_params)


def test_obs_dim_is_inferred_from_the_first_layer():
    policy = ModulePolicy(nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)))
    assert (policy.obs_dim, policy.act_dim) == (5, 2)
    with pytest.raises(ValueError, match="cannot infer obs_dim of Tanh; pass it"):
        ModulePolicy(nn.Tanh())

"""Virtual batch normalization in ConvPolicy: each member's hidden layers are normalized by its own statistics on
the fixed reference batch, never by the batch it is evaluated on, and the same member gives the same output
whatever else is in the batch or the population."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuroevo.envs import make_env
from neuroevo.policies import ConvPolicy, PolicyConfig, policy_from_spec
from neuroevo.policies.vbn import EPS, collect_reference

SHAPE = (2, 36, 36)  # the small network: 36 -> 8 -> 3


def _policy_and_members(popsize: int = 3) -> tuple[ConvPolicy, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    reference = torch.randint(0, 256, (16, 2 * 36 * 36), generator=gen, dtype=torch.uint8)
    policy = ConvPolicy(SHAPE, 5, arch="small", vbn=True, reference=reference)
    center = policy.init_params(gen)
    params = center + 0.3 * torch.randn(popsize, policy.num_params, generator=gen)  # gains and biases move too
    return policy, params


def _by_hand(policy: ConvPolicy, member: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """One member, layer by layer with F.conv2d: each hidden pre-activation normalized by the mean and variance it
    has on the reference batch, then the member's gain and bias, then ReLU."""
    def layer(x: torch.Tensor, ref: torch.Tensor, w: torch.Tensor, b: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
              op, dims) -> tuple[torch.Tensor, torch.Tensor]:
        zr, zx = op(ref, w, b), op(x, w, b)
        mean, var = zr.mean(dims, keepdim=True), zr.var(dims, keepdim=True, unbiased=False)
        shape = [1, -1] + [1] * (zr.ndim - 2)
        def norm(z):
            return torch.relu((z - mean) / torch.sqrt(var + EPS) * g.view(shape) + beta.view(shape))
        return norm(zr), norm(zx)

    ref = policy.reference.float().view(-1, *SHAPE) / 255.0
    x = obs.float().view(-1, *SHAPE) / 255.0
    offset = policy.plain_params
    for channels, out, kernel, stride, _, w_start, b_start, b_end in policy._convs:
        w = member[w_start:b_start].view(out, channels, kernel, kernel)
        g, beta = member[offset:offset + out], member[offset + out:offset + 2 * out]
        offset += 2 * out
        ref, x = layer(x, ref, w, member[b_start:b_end], g, beta, lambda t, w_, b_, s=stride: F.conv2d(t, w_, b_, s),
                       (0, 2, 3))
    ref, x = ref.flatten(1), x.flatten(1)
    (fan_in, hidden, w_start, b_start, b_end), (_, act, w2, b2, e2) = policy._dense
    W = member[w_start:b_start].view(fan_in, hidden)
    g, beta = member[offset:offset + hidden], member[offset + hidden:offset + 2 * hidden]
    ref, x = layer(x, ref, W, member[b_start:b_end], g, beta, lambda t, w_, b_: t @ w_ + b_, (0,))
    return x @ member[w2:b2].view(hidden, act) + member[b2:e2]


def test_each_member_is_normalized_by_its_reference_statistics_not_by_the_batch():
    policy, params = _policy_and_members()
    gen = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (3, 4, policy.obs_dim), generator=gen, dtype=torch.uint8)
    out = policy(params, obs)
    for p in range(3):
        torch.testing.assert_close(out[p], _by_hand(policy, params[p], obs[p]), rtol=1e-4, atol=1e-4)
    # the same observation in another batch (other observations beside it, a batch of one) gives the same output
    other = torch.randint(0, 256, (3, 4, policy.obs_dim), generator=gen, dtype=torch.uint8)
    other[:, 2] = obs[:, 0]
    torch.testing.assert_close(policy(params, other)[:, 2], out[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(policy(params, obs[:, :1])[:, 0], out[:, 0], rtol=1e-5, atol=1e-5)
    # what batch statistics would have given instead: different outputs
    assert not torch.allclose(_by_hand(ConvPolicy(SHAPE, 5, "small", vbn=True, reference=obs[0]), params[0], obs[0]),
                              out[0], atol=1e-3)


def test_members_alike_give_alike_outputs_whatever_the_population():
    policy, params = _policy_and_members(4)
    params[2] = params[0]
    obs = torch.randint(0, 256, (1, 3, policy.obs_dim), generator=torch.Generator().manual_seed(2),
                        dtype=torch.uint8).expand(4, 3, -1)
    out = policy(params, obs)
    # equal up to float32 rounding: the batched kernels may block the members' rows differently (1.4e-6 seen)
    torch.testing.assert_close(out[2], out[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(policy(params[2:3].clone(), obs[:1]), out[2:3], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[1], out[0])
    # a changed population is a new tensor: its statistics are computed again (not those cached for `params`)
    params[0] += 0.5
    assert not torch.allclose(policy(params, obs)[0], out[0])


def test_vbn_round_trips_through_its_spec_and_deploys_folded():
    policy, params = _policy_and_members(2)
    again = policy_from_spec(policy.spec())
    assert again == policy and torch.equal(again.reference, policy.reference)
    obs = torch.randint(0, 256, (2, 3, policy.obs_dim), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    torch.testing.assert_close(again(params, obs), policy(params, obs))
    module = policy.to_module(params[1])
    torch.testing.assert_close(module(obs[1]), policy(params, obs)[1], rtol=1e-4, atol=1e-5)
    assert PolicyConfig(kind="cnn", vbn=128).describing(policy).vbn == 16
    with pytest.raises(ValueError, match="needs its reference batch"):
        ConvPolicy(SHAPE, 5, "small", vbn=True)(params, obs)


def test_the_reference_batch_is_random_play_and_repeats_with_its_seed():
    env = make_env("CartPole-v1", 8, "cpu", "torch")
    first, second = collect_reference(env, 20, seed=4), collect_reference(env, 20, seed=4)
    assert first.shape == (20, 4) and torch.equal(first, second)
    assert not torch.equal(first, collect_reference(env, 20, seed=5))

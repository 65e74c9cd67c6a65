"""DeployedPolicy: one member as a plain module, matching normalize -> policy -> to_env_action."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from neuroevo.policies import MLP, DeployedPolicy, Linear, ObsNormalizer, to_env_action

OBS_DIM = 6
SPACES = {
    "discrete": gym.spaces.Discrete(4, start=2),
    "box": gym.spaces.Box(
        low=-0.5, high=np.array([[0.3, 0.5, 1.0], [2.0, 0.1, 0.2]], dtype=np.float32), dtype=np.float32
    ),
}


def _setup(space, policy_cls=MLP, with_normalizer=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    policy = policy_cls(OBS_DIM, 4 if isinstance(space, gym.spaces.Discrete) else 6)
    params = torch.randn(3, policy.num_params, generator=g) * 0.5
    normalizer = None
    if with_normalizer:
        normalizer = ObsNormalizer(OBS_DIM, clip=2.0)
        normalizer.update(torch.randn(200, OBS_DIM, generator=g) * 4 + 1)
    return policy, params, normalizer


def _batched_actions(policy, params, normalizer, space, obs):
    """The training path for every member: obs [B, obs_dim] -> actions [P, B, ...]."""
    x = obs.expand(params.shape[0], *obs.shape)
    if normalizer is not None:
        x = normalizer.normalize(x)
    return to_env_action(policy(params, x), space)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("policy_cls", [Linear, MLP])
@pytest.mark.parametrize("with_normalizer", [True, False])
def test_matches_batched_path(space_name, policy_cls, with_normalizer):
    space = SPACES[space_name]
    policy, params, normalizer = _setup(space, policy_cls, with_normalizer)
    obs = torch.randn(64, OBS_DIM, generator=torch.Generator().manual_seed(5)) * 4
    expected = _batched_actions(policy, params, normalizer, space, obs)
    for i in range(params.shape[0]):
        deployed = DeployedPolicy.build(policy, params[i], space, normalizer)
        assert isinstance(deployed, torch.nn.Module)
        with torch.no_grad():
            actions = deployed(obs)
        if space_name == "discrete":
            assert actions.dtype == torch.int64 and torch.equal(actions, expected[i])
        else:
            assert actions.shape == (64, 2, 3)
            # nn.Linear's addmm and the batched baddbmm round differently in the last bits.
            torch.testing.assert_close(actions, expected[i], atol=1e-5, rtol=1e-5)
        # Unbatched in, unbatched out.
        single = deployed(obs[7].double())  # raw env observations are often float64
        assert single.shape == expected[i, 7].shape and single.dtype == actions.dtype
        torch.testing.assert_close(single, actions[7], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("space_name", SPACES)
def test_state_dict_round_trip(space_name):
    space = SPACES[space_name]
    policy, params, normalizer = _setup(space)
    deployed = DeployedPolicy.build(policy, params[0], space, normalizer)
    # A fresh module built from other params and other stats takes the whole state from the state_dict.
    _, other_params, other_normalizer = _setup(space, seed=1)
    fresh = DeployedPolicy.build(policy, other_params[1], space, other_normalizer)
    fresh.load_state_dict(deployed.state_dict())
    obs = torch.randn(32, OBS_DIM) * 4
    assert torch.equal(fresh(obs), deployed(obs))
    # Built without a normalizer, it has no normalization buffers: a mismatched state does not load.
    bare = DeployedPolicy.build(policy, params[0], space, None)
    with pytest.raises(RuntimeError, match="obs_mean"):
        bare.load_state_dict(deployed.state_dict())


def test_build_checks_fit():
    policy, params, normalizer = _setup(SPACES["discrete"])
    with pytest.raises(ValueError, match="policy outputs 4 values but the action space Discrete"):
        DeployedPolicy.build(policy, params[0], gym.spaces.Discrete(3), normalizer)
    with pytest.raises(ValueError, match="normalizer for obs_dim 5"):
        DeployedPolicy.build(policy, params[0], SPACES["discrete"], ObsNormalizer(5))


@pytest.mark.parametrize("space, act_dim", [(gym.spaces.Box(-2.0, 2.0, (1,)), 1), (gym.spaces.Discrete(3, start=1), 3)])
def test_deployed_policy_survives_torchscript_and_export(space, act_dim):
    """What users do with a module they deploy: script it or export it, and get the same actions."""
    policy = MLP(3, act_dim, hidden=(8,))
    normalizer = ObsNormalizer(3)
    normalizer.merge(ObsNormalizer.batch_stats(torch.randn(20, 3)))
    module = DeployedPolicy.build(policy, policy.init_params(torch.Generator().manual_seed(0)), space, normalizer)
    obs = torch.randn(6, 3)
    assert torch.equal(torch.jit.script(module)(obs), module(obs))
    assert torch.equal(torch.export.export(module, (obs,)).module()(obs), module(obs))

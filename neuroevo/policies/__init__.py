"""Policies: stateless architectures over a population of flat parameters ``params: [P, D]``.

    policy = make_policy("mlp", obs_dim, act_dim, hidden=[64, 64])
    raw = policy(params, normalizer.normalize(obs))     # [P, D], [P, E, obs_dim] -> [P, E, act_dim]
    actions = to_env_action(raw, env.single_action_space)
    module = DeployedPolicy.build(policy, best_params, action_space, normalizer)   # one member, deployable
"""

from neuroevo.policies.base import Policy, make_policy, policy_from_spec
from neuroevo.policies.cnn import ConvPolicy
from neuroevo.policies.config import PolicyConfig
from neuroevo.policies.deploy import DeployedPolicy
from neuroevo.policies.export import export_onnx
from neuroevo.policies.head import check_fits, output_dim, to_env_action
from neuroevo.policies.linear import Linear
from neuroevo.policies.mlp import MLP
from neuroevo.policies.module import ModulePolicy
from neuroevo.policies.normalizer import ObsNormalizer

__all__ = [
    "ConvPolicy",
    "DeployedPolicy",
    "Linear",
    "MLP",
    "ModulePolicy",
    "ObsNormalizer",
    "Policy",
    "PolicyConfig",
    "check_fits",
    "export_onnx",
    "make_policy",
    "output_dim",
    "policy_from_spec",
    "to_env_action",
]

"""The policy section of a run's config, and the policy it describes."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym

from neuroevo.policies.base import Policy, make_policy
from neuroevo.policies.head import output_dim


@dataclass
class PolicyConfig:
    kind: str = "mlp"
    """'linear' or 'mlp'"""
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    """MLP hidden layer sizes"""
    activation: str = "tanh"
    """MLP activation"""
    normalize_obs: bool = True
    """running observation normalization in the policy's input path (ARS V2; V1 when False)"""

    def build(self, obs_dim: int, action_space: gym.Space) -> Policy:
        """The policy this section describes, for observations of ``obs_dim`` and ``action_space``."""
        kwargs = {"hidden": self.hidden, "activation": self.activation} if self.kind == "mlp" else {}
        return make_policy(self.kind, obs_dim, output_dim(action_space), **kwargs)

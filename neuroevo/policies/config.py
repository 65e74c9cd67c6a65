"""The policy section of a run's config, and the policy it describes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from neuroevo.policies.base import Policy, make_policy
from neuroevo.policies.head import output_dim
from neuroevo.policies.module import ModulePolicy


@dataclass
class PolicyConfig:
    kind: str = "mlp"
    """'linear', 'mlp', 'cnn' (a conv net over image observations: ``arch``, ``padding``), or 'module': a network
    of your own, named by ``module``"""
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    """MLP hidden layer sizes"""
    activation: str = "tanh"
    """MLP activation"""
    normalize_obs: bool = True
    """running observation normalization in the policy's input path (ARS V2; V1 when False)"""
    arch: str = "nature"
    """with kind 'cnn': 'nature' (Mnih et al. 2015: conv 32-64-64, dense 512) or 'small' (Mnih et al. 2013, the
    Deep Neuroevolution code's small model: conv 16-32, dense 256)"""
    padding: str = "valid"
    """with kind 'cnn': 'valid' (the Nature network's 1.7M parameters at 84x84, 18 actions) or 'same'
    (TensorFlow's SAME, as the Deep Neuroevolution code: 4.0M)"""
    vbn: int = 0
    """with kind 'cnn': virtual batch normalization (Salimans et al. 2017 used it for ES on Atari): the size of
    the reference batch of observations, collected once at the start of training from random-action play, whose
    statistics normalize every hidden layer of each member (128 in the ES code); 0: off"""
    module: str | None = None
    """with kind 'module': your ``nn.Module`` class, 'package.module:ClassName' (importable where the run is
    trained, evaluated or resumed, Ray workers included), mapping observations [B, obs_dim] to outputs
    [B, act_dim]; built as ``ClassName(**kwargs)``, plus ``obs_dim`` / ``act_dim`` where it takes them"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """with kind 'module': the keyword arguments of ``module``'s constructor, e.g. ``{hidden = 32}``"""

    def build(self, obs_dim: int, action_space: gym.Space, observation_space: gym.Space | None = None) -> Policy:
        """The policy this section describes, for observations of ``obs_dim`` (of ``observation_space``, whose
        image shape kind 'cnn' needs) and ``action_space``."""
        if self.kind == "module":
            if self.module is None:
                raise ValueError(
                    "policy.kind is 'module' but policy.module is not set: name your nn.Module class, "
                    "e.g. --set policy.module=my_package.nets:MyNet (a module passed to Trainer as an object "
                    "must be passed again: Trainer.resume(run_dir, policy=ModulePolicy(MyNet())))"
                )
            return ModulePolicy.from_path(self.module, obs_dim, output_dim(action_space), self.kwargs)
        if self.module is not None:
            raise ValueError(f"policy.module is set but policy.kind is {self.kind!r}: set policy.kind = 'module'")
        kwargs: dict[str, Any] = {}
        if self.kind == "mlp":
            kwargs = {"hidden": self.hidden, "activation": self.activation}
        elif self.kind == "cnn":
            shape = getattr(observation_space, "shape", None)
            if shape is None or len(shape) != 3:
                raise ValueError(f"policy kind 'cnn' needs image observations (channels, height, width); this env's "
                                 f"observations have shape {shape}: use kind 'mlp' or 'linear'")
            kwargs = {"obs_shape": tuple(shape), "arch": self.arch, "padding": self.padding, "vbn": self.vbn > 0}
        return make_policy(self.kind, obs_dim, output_dim(action_space), **kwargs)

    def describing(self, policy: Policy) -> PolicyConfig:
        """This section, changed to describe ``policy`` (a policy passed to the trainer as an object), so that
        the run's config names the policy it trained; a module passed as an object is kind 'module' with no
        ``module`` (resuming it needs the object again)."""
        spec = policy.spec()
        kind = spec["kind"]
        fields: dict[str, Any] = {"kind": kind, "module": None, "kwargs": {}}
        if kind == "module":
            fields.update(module=spec.get("module"), kwargs=dict(spec.get("kwargs") or {}))
        elif kind == "mlp":
            fields.update(hidden=list(spec["hidden"]), activation=spec["activation"])
        elif kind == "cnn":
            fields.update(arch=spec["arch"], padding=spec["padding"])
            reference = getattr(policy, "reference", None)  # a VBN reference batch [R, obs_dim]
            if not spec.get("vbn"):
                fields.update(vbn=0)
            elif reference is not None:
                fields.update(vbn=int(reference.shape[0]))
        return PolicyConfig(**{**self.__dict__, **fields})

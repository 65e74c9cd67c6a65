"""The policy contract: a stateless architecture evaluated over a population of flat parameter vectors.

A policy owns no weights. The population is one tensor ``params: [P, D]`` (``D = policy.num_params``) and
one call evaluates every member on its own observations:

    actions = policy(params, obs)    # params: [P, D], obs: [P, E, obs_dim] -> [P, E, act_dim]

``act_dim`` is the raw output size (logits for a ``Discrete`` space); :mod:`neuroevo.policies.head` turns
raw outputs into env actions. ``spec()`` is plain data that :func:`policy_from_spec` rebuilds the policy
from, so checkpoints loaded with ``torch.load(weights_only=True)`` can carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neuroevo.policies.lowrank import Layout, LowRankParams, Params, dense_layout

# kind -> class, filled by ``class X(Policy, kind="...")``: every policy buildable from plain data.
_KINDS: dict[str, Callable[..., Policy]] = {}


class Policy:
    """Base of every policy. Subclasses set the attributes below and implement ``_forward``,
    ``init_params``, ``to_module`` and ``_spec_args``; the base checks shapes and handles specs."""

    kind: ClassVar[str]
    obs_dim: int
    act_dim: int
    num_params: int
    #: the population forward is heavy enough to want every torch CPU thread even beside an env that steps on
    #: threads of its own (conv policies); otherwise the rollout runs torch on one thread beside such an env
    threaded_forward: ClassVar[bool] = False

    @property
    def reproducible_init(self) -> bool:
        """Whether :meth:`init_params` depends on its generator alone (the same center in any process, as the
        contract asks): a checkpoint then leaves the optimizer's starting point out and a resume rebuilds it."""
        return True

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            _KINDS[kind] = cls

    # -- the population forward -------------------------------------------------------------------------

    def __call__(self, params: Params, obs: Tensor) -> Tensor:
        """Evaluate every member on its observations in one batched call.

        params: [P, D] floating, or P members in low-rank form (:class:`~neuroevo.policies.lowrank.LowRankParams`,
        EGGROLL's); obs: [P, E, obs_dim] (cast to params' dtype) -> [P, E, act_dim].
        """
        self.check_inputs(params, obs)
        if isinstance(params, LowRankParams):
            layout = self.__dict__.get("_layout") or self.__dict__.setdefault("_layout", self.param_layout())
            if params.layout != layout:  # the same tuple, step after step: compared by identity first
                raise ValueError(f"{self!r}: low-rank members of another parameter layout ({len(params.layout)} "
                                 f"blocks; this policy's param_layout() has {len(layout)})")
            return self._forward_low_rank(params, obs.to(params.dtype))
        return self._forward(params, obs.to(params.dtype))

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        """params: [P, D], obs: [P, E, obs_dim] of params' dtype -> [P, E, act_dim]. Inputs are checked."""
        raise NotImplementedError

    def param_layout(self) -> Layout:
        """The flat parameters cut into tensors (:class:`~neuroevo.policies.lowrank.ParamBlock`): weight matrices
        as 2-D blocks (low-rank perturbations in EGGROLL), everything else 1-D. Here: one dense block."""
        return dense_layout(self.num_params)

    def _forward_low_rank(self, members: LowRankParams, obs: Tensor) -> Tensor:
        """:meth:`_forward` for members in low-rank form; here on their dense rows (policies with a batched
        low-rank forward, :mod:`neuroevo.policies.batched`, override it and never build them)."""
        return self._forward(members.dense(), obs)

    def check_inputs(self, params: Params, obs: Tensor) -> None:
        """One-line ``ValueError`` naming the bad shape unless params: [P, D] and obs: [P, E, obs_dim]."""
        if params.ndim != 2 or params.shape[1] != self.num_params:
            raise ValueError(
                f"{self!r}: params of shape {tuple(params.shape)} should be [P, {self.num_params}]"
            )
        if not params.is_floating_point():
            raise ValueError(f"{self!r}: params must be floating point, got {params.dtype}")
        if obs.ndim != 3 or obs.shape[0] != params.shape[0] or obs.shape[2] != self.obs_dim:
            raise ValueError(
                f"{self!r}: obs of shape {tuple(obs.shape)} should be [P, E, {self.obs_dim}] "
                f"with P = {params.shape[0]} as in params"
            )

    def check_flat(self, flat_params: Tensor) -> None:
        """Raise a one-line ``ValueError`` unless ``flat_params`` is one member: [D]."""
        if flat_params.ndim != 1 or flat_params.shape[0] != self.num_params:
            raise ValueError(
                f"{self!r}: flat params of shape {tuple(flat_params.shape)} should be [{self.num_params}]"
            )

    # -- single members ---------------------------------------------------------------------------------

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """An initial center: [D] in the default dtype on ``device``, random draws from ``generator``."""
        raise NotImplementedError

    def init_std(self) -> Tensor:
        """The standard deviation of :meth:`init_params`'s draw for each parameter: [D] (0 where the init is
        fixed). Random starting points (``init = "random"`` of the GA and random search) draw Gaussians with it."""
        raise ValueError(f"{type(self).__name__} has no init_std(), which init = 'random' needs: use init = "
                         "'center', or implement it")

    def to_module(self, flat_params: Tensor) -> nn.Module:
        """A plain torch module for one member, ``[B, obs_dim] -> [B, act_dim]``, on flat_params' device
        and dtype, giving the same numbers as the batched call. flat_params: [D]."""
        raise NotImplementedError

    # -- plain-data round trip --------------------------------------------------------------------------

    def _spec_args(self) -> dict[str, Any]:
        """Constructor keyword arguments as plain data (str / int / float / bool / list)."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Plain data that :func:`policy_from_spec` rebuilds an equal policy from."""
        return {"kind": self.kind, **self._spec_args()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._spec_args().items())
        return f"{type(self).__name__}({args})"


def policy_from_spec(spec: dict[str, Any]) -> Policy:
    """Rebuild a policy from ``Policy.spec()`` output. Raises ``ValueError`` for an unknown kind."""
    args = dict(spec)
    kind = args.pop("kind", None)
    if kind == "module":  # a user's nn.Module: rebuilt from its import path, where it has one
        from neuroevo.policies.module import ModulePolicy

        return ModulePolicy.from_spec(spec)
    if kind not in _KINDS:
        raise ValueError(f"unknown policy kind {kind!r} in spec; known kinds: {', '.join(sorted(_KINDS))}")
    try:
        return _KINDS[kind](**args)
    except TypeError as err:
        raise ValueError(f"bad spec for policy kind {kind!r}: {err}") from None


def make_policy(kind: str, obs_dim: int, act_dim: int, **kwargs: Any) -> Policy:
    """Build a policy by name, e.g. ``make_policy("mlp", 4, 2, hidden=[32])``. Kinds: linear, mlp."""
    if kind not in _KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; known kinds: {', '.join(sorted(_KINDS))}")
    return _KINDS[kind](obs_dim=obs_dim, act_dim=act_dim, **kwargs)

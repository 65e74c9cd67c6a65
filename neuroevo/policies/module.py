"""Any user ``nn.Module`` as a population policy, via ``torch.func.functional_call`` under ``torch.vmap``."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from neuroevo.policies.base import Policy
from neuroevo.policies.lowrank import Layout, ParamBlock


class ModulePolicy(Policy):
    """A user module mapping ``[B, obs_dim] -> [B, act_dim]``, evolved as flat parameters.

    Flat layout: the module's parameters in ``module.named_parameters()`` order, each flattened row-major
    (the layout of ``torch.nn.utils.parameters_to_vector``). Every parameter is evolved, frozen or not;
    buffers are used as they are and never evolved. ``act_dim`` comes from a dry forward on zeros
    ``[1, obs_dim]``; ``obs_dim``, if not given, is the ``in_features`` of the first layer that has one.

    The batched call views each parameter's slice of ``params: [P, D]`` as ``[P, *shape]`` and runs
    ``vmap(functional_call)`` over it, so the module runs in its current train/eval mode: put modules with
    dropout or batch norm in ``eval()`` first. The module's buffers must sit on params' device.

    The spec (kind "module") is informative only: :func:`policy_from_spec` cannot rebuild a user module,
    so load code builds the module and wraps it again.
    """

    kind = "module"

    def __init__(self, module: nn.Module, obs_dim: int | None = None):
        if obs_dim is None:  # the input size of the first layer that declares one (nn.Linear, ...)
            sizes = (getattr(m, "in_features", None) for m in module.modules())
            first = next((size for size in sizes if isinstance(size, int)), None)
            if first is None:
                raise ValueError(f"ModulePolicy: cannot infer obs_dim of {type(module).__name__}; pass obs_dim")
            obs_dim = first
        self.module = module
        self.obs_dim = int(obs_dim)
        self._names = [name for name, _ in module.named_parameters()]
        self._shapes = [p.shape for _, p in module.named_parameters()]
        self.num_params = sum(p.numel() for p in module.parameters())
        ref = next(module.parameters(), None)
        zeros = torch.zeros(
            1,
            self.obs_dim,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )
        with torch.no_grad():
            out = module(zeros)
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 1:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"ModulePolicy: {type(module).__name__} maps [1, {self.obs_dim}] zeros to {shape}; "
                "it should map [B, obs_dim] to [B, act_dim]"
            )
        self.act_dim = int(out.shape[1])

    def _member_forward(self, member_params: dict[str, Tensor], obs: Tensor) -> Tensor:
        # Parameters come from the batch; buffers (not in the dict) fall back to the module's own.
        return functional_call(self.module, member_params, (obs,))

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        P = params.shape[0]
        batched: dict[str, Tensor] = {}
        offset = 0
        for name, shape in zip(self._names, self._shapes, strict=True):
            n = shape.numel()
            # A column slice viewed as [P, *shape] stays a view of params: no copy of the population.
            batched[name] = params[:, offset : offset + n].view(P, *shape)
            offset += n
        return torch.vmap(self._member_forward)(batched, obs)

    def param_layout(self) -> Layout:
        """A block per parameter in flat order: an ``nn.Linear`` weight as its [out, in] matrix, an ungrouped
        ``nn.Conv2d`` weight as [out, in x kh x kw] (low-rank noise in EGGROLL), any other tensor 1-D (full-rank
        noise). The population forward runs on the members' dense rows (vmap over a user module)."""
        matrices: dict[int, tuple[int, int]] = {}
        for m in self.module.modules():
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1):
                matrices[id(m.weight)] = (m.weight.shape[0], m.weight[0].numel())
        blocks, offset = [], 0
        for _, p in self.module.named_parameters():
            blocks.append(ParamBlock(offset, matrices.get(id(p), (p.numel(),))))
            offset += p.numel()
        return tuple(blocks)

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """The module's current parameters (its own init) as [D]; ``generator`` is unused, since
        re-running a user module's init from a given generator is not generally possible."""
        flat = parameters_to_vector(self.module.parameters()).detach().clone()
        return flat.to(device) if device is not None else flat

    def to_module(self, flat_params: Tensor) -> nn.Module:
        """A deep copy of the module on flat_params' device, its parameters set to ``flat_params: [D]``."""
        self.check_flat(flat_params)
        member = copy.deepcopy(self.module).to(flat_params.device)
        # Clone: vector_to_parameters makes the parameters views of the vector it is given.
        vector_to_parameters(flat_params.detach().clone(), member.parameters())
        return member

    def _spec_args(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "num_params": self.num_params,
            "module_class": type(self.module).__qualname__,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModulePolicy):
            return False
        return other.module is self.module and other.obs_dim == self.obs_dim

    def __hash__(self) -> int:
        return hash((id(self.module), self.obs_dim))

    def __repr__(self) -> str:
        return f"ModulePolicy({type(self.module).__name__}, obs_dim={self.obs_dim}, act_dim={self.act_dim})"

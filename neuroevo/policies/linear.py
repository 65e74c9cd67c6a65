"""Linear policy: ``actions = obs @ W + b``, the architecture of ARS (Mania et al., 2018)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from neuroevo.policies import batched
from neuroevo.policies.base import Policy
from neuroevo.policies.lowrank import Layout, LowRankParams, ParamBlock


class Linear(Policy, kind="linear"):
    """``actions = obs @ W + b`` for every member at once.

    Flat layout of one member (D = obs_dim * act_dim + act_dim, or without the bias term):
        W: [obs_dim, act_dim] row-major, then b: [act_dim].
    The batched call reads W and b as views of ``params: [P, D]`` (no copies) and runs one ``baddbmm``.
    ``init_params`` is all zeros, as ARS starts from the zero policy.
    """

    def __init__(self, obs_dim: int, act_dim: int, bias: bool = True):
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"Linear needs obs_dim >= 1 and act_dim >= 1, got {obs_dim} and {act_dim}")
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.bias = bool(bias)
        self._w_end = self.obs_dim * self.act_dim
        self.num_params = self._w_end + (self.act_dim if self.bias else 0)

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        # Slicing the columns keeps the row stride D, so view() stays a view of params and bmm reads it
        # as a strided batch without copying.
        P = params.shape[0]
        W = params[:, : self._w_end].view(P, self.obs_dim, self.act_dim)
        if not self.bias:
            return torch.bmm(obs, W)
        b = params[:, self._w_end :].unsqueeze(1)  # [P, 1, act_dim], broadcast over E
        return torch.baddbmm(b, obs, W)

    def param_layout(self) -> Layout:
        """W as an [obs_dim, act_dim] matrix block, then b."""
        w = ParamBlock(0, (self.obs_dim, self.act_dim))
        return (w, ParamBlock(self._w_end, (self.act_dim,))) if self.bias else (w,)

    def _forward_low_rank(self, members: LowRankParams, obs: Tensor) -> Tensor:
        W, w_noise = members.block(0)
        b, b_delta = members.block(1) if self.bias else (None, None)
        assert b_delta is None or isinstance(b_delta, Tensor)  # a bias is a dense block
        return batched.linear_members(obs, W, b, w_noise, b_delta)

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Zeros: [D]. ``generator`` is unused (accepted so every policy is initialized alike)."""
        return torch.zeros(self.num_params, device=device)

    def init_std(self) -> Tensor:
        """Zeros: [D] (the init is fixed; init = 'random' refuses it)."""
        return torch.zeros(self.num_params)

    def to_module(self, flat_params: Tensor) -> nn.Linear:
        self.check_flat(flat_params)
        layer = nn.Linear(
            self.obs_dim, self.act_dim, bias=self.bias, device=flat_params.device, dtype=flat_params.dtype
        )
        with torch.no_grad():
            # nn.Linear stores weight as [out, in]; our W is [in, out].
            layer.weight.copy_(flat_params[: self._w_end].view(self.obs_dim, self.act_dim).T)
            if self.bias:
                layer.bias.copy_(flat_params[self._w_end :])
        return layer

    def _spec_args(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "bias": self.bias}

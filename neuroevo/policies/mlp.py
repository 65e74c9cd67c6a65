"""Multi-layer perceptron over flat parameters, batched over the population with ``baddbmm``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuroevo.policies import batched
from neuroevo.policies.base import Policy
from neuroevo.policies.lowrank import Layout, LowRankParams, ParamBlock

# name -> (batched function, module factory for to_module); both must compute the same numbers.
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[], nn.Module]]] = {
    "tanh": (torch.tanh, nn.Tanh),
    "relu": (torch.relu, nn.ReLU),
    "elu": (F.elu, nn.ELU),
    "gelu": (F.gelu, nn.GELU),
    "identity": (lambda x: x, nn.Identity),
}

# Output layer scale at init: a small output layer starts every member near the zero action, so early
# generations explore around a neutral policy instead of saturating (common in ES, e.g. Salimans et al.).
OUTPUT_INIT_SCALE = 0.1


class MLP(Policy, kind="mlp"):
    """``obs -> Linear -> act -> ... -> Linear -> raw actions``; no activation after the output layer.

    Layer sizes are ``[obs_dim, *hidden, act_dim]``. Flat layout of one member, layer by layer:
        W: [in, out] row-major, then b: [out].
    The batched call reads each W and b as views of ``params: [P, D]`` (no copies of the population) and
    runs one ``baddbmm`` per layer.

    ``init_params``: ``nn.Linear``'s default scheme, W and b ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from the
    given generator; the output layer is then scaled by ``OUTPUT_INIT_SCALE`` (0.1).
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh"
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        sizes = [int(obs_dim), *(int(h) for h in hidden), int(act_dim)]
        if min(sizes) < 1:
            raise ValueError(f"MLP layer sizes must be >= 1, got obs_dim, *hidden, act_dim = {sizes}")
        self.obs_dim, self.act_dim = sizes[0], sizes[-1]
        self.hidden = tuple(sizes[1:-1])
        self.activation = activation
        self._act = ACTIVATIONS[activation][0]
        # Per layer: (fan_in, fan_out, start of W, start of b, end of b) in the flat vector.
        self._layers: list[tuple[int, int, int, int, int]] = []
        offset = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
            b_start = offset + fan_in * fan_out
            self._layers.append((fan_in, fan_out, offset, b_start, b_start + fan_out))
            offset = b_start + fan_out
        self.num_params = offset

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        P = params.shape[0]
        x = obs
        last = len(self._layers) - 1
        for i, (fan_in, fan_out, w_start, b_start, b_end) in enumerate(self._layers):
            # Column slices keep the row stride D, so view() is a view and bmm reads the strided batch
            # directly: the [P, D] population is never copied (it dominates memory traffic at large P).
            W = params[:, w_start:b_start].view(P, fan_in, fan_out)
            b = params[:, b_start:b_end].unsqueeze(1)  # [P, 1, out], broadcast over E
            x = torch.baddbmm(b, x, W)
            if i < last:
                x = self._act(x)
        return x

    def param_layout(self) -> Layout:
        """Per layer: W as a [in, out] matrix block, then b."""
        blocks: list[ParamBlock] = []
        for fan_in, fan_out, w_start, b_start, _ in self._layers:
            blocks += [ParamBlock(w_start, (fan_in, fan_out)), ParamBlock(b_start, (fan_out,))]
        return tuple(blocks)

    def _forward_low_rank(self, members: LowRankParams, obs: Tensor) -> Tensor:
        # Per layer: the shared matmul over all P x E inputs plus the rank-r correction (batched.linear_low_rank);
        # a layer too thin for low-rank noise has dense noise, and its [P, in, out] weights are built.
        x = obs
        last = len(self._layers) - 1
        for i in range(len(self._layers)):
            W, w_noise = members.block(2 * i)
            b, b_delta = members.block(2 * i + 1)
            assert isinstance(b_delta, Tensor)  # biases are dense blocks
            x = batched.linear_members(x, W, b, w_noise, b_delta)
            if i < last:
                x = self._act(x)
        return x

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """nn.Linear's default init, output layer x0.1: [D] in the default dtype on ``device``."""
        draw_device = generator.device if generator is not None else device
        u = torch.rand(self.num_params, generator=generator, device=draw_device) * 2 - 1
        u *= self._init_bound().to(u.device)
        return u.to(device) if device is not None else u

    def init_std(self) -> Tensor:
        """init_params' std per parameter: each layer's uniform bound over sqrt(3)."""
        return (self._init_bound(torch.float64) / math.sqrt(3)).to(torch.get_default_dtype())

    def _init_bound(self, dtype: torch.dtype | None = None) -> Tensor:
        """[D]: the bound of each parameter's uniform init, 1/sqrt(fan in) (the output layer's x0.1)."""
        bound = torch.empty(self.num_params, dtype=dtype)
        last = len(self._layers) - 1
        for i, (fan_in, _, w_start, _, b_end) in enumerate(self._layers):
            bound[w_start:b_end] = 1 / math.sqrt(fan_in) * (OUTPUT_INIT_SCALE if i == last else 1.0)
        return bound

    def to_module(self, flat_params: Tensor) -> nn.Sequential:
        self.check_flat(flat_params)
        modules: list[nn.Module] = []
        last = len(self._layers) - 1
        for i, (fan_in, fan_out, w_start, b_start, b_end) in enumerate(self._layers):
            layer = nn.Linear(fan_in, fan_out, device=flat_params.device, dtype=flat_params.dtype)
            with torch.no_grad():
                # nn.Linear stores weight as [out, in]; our W is [in, out].
                layer.weight.copy_(flat_params[w_start:b_start].view(fan_in, fan_out).T)
                layer.bias.copy_(flat_params[b_start:b_end])
            modules.append(layer)
            if i < last and self.activation != "identity":
                modules.append(ACTIVATIONS[self.activation][1]())
        return nn.Sequential(*modules)

    def _spec_args(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
        }

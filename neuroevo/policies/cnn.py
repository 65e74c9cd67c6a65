"""Convolutional policies over a population, for pixels: ``obs -> conv -> relu -> ... -> dense -> relu -> raw``.

Two architectures, by name (``arch``):

- ``"nature"``: Mnih et al. 2015 ("Human-level control through deep reinforcement learning"): conv 32 8x8
  stride 4, conv 64 4x4 stride 2, conv 64 3x3 stride 1, dense 512. With ``padding="valid"`` (as the paper's
  network and Stable-Baselines3's ``NatureCNN``) an 84x84 input gives 7x7x64 features and 1.69M parameters
  for 18 actions; with ``padding="same"`` (TensorFlow's SAME, as in the Deep Neuroevolution code, Such et al.
  2017) 11x11x64 and the "over four million parameters" that paper reports (4.0M).
- ``"small"``: the network of Mnih et al. 2013 ("Playing Atari with deep reinforcement learning"), which the
  Deep Neuroevolution code also offers: conv 16 8x8 stride 4, conv 32 4x4 stride 2, dense 256 (0.68M
  parameters with valid padding).

Observations arrive flattened, [P, E, C * H * W] (uint8 pixels until here), and are viewed as images of
``obs_shape`` and scaled by 1/255. The population forward runs every layer for all P members at once with no
loop over members (:mod:`neuroevo.policies.batched`: a grouped convolution with ``groups = P``, then ``bmm``),
and for EGGROLL's low-rank members the shared convolution plus the thin per-member one.

Flat layout of one member, layer by layer: a conv's weight as ``nn.Conv2d``'s [O, C, kh, kw] (a matrix
[O, C kh kw] for low-rank noise), then its bias [O]; a dense layer's W as [in, out], then b [out].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuroevo.policies import batched
from neuroevo.policies.base import Policy
from neuroevo.policies.lowrank import Layout, LowRankParams, ParamBlock

#: arch -> (convs as (out channels, kernel, stride), dense hidden sizes)
ARCHITECTURES: dict[str, tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]] = {
    "nature": (((32, 8, 4), (64, 4, 2), (64, 3, 1)), (512,)),
    "small": (((16, 8, 4), (32, 4, 2)), (256,)),
}
PADDINGS = ("valid", "same")
#: the output layer's initial scale (as the MLP's): every member starts near a uniform choice of actions
OUTPUT_INIT_SCALE = 0.1


def _out_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return math.ceil(size / stride) if padding == "same" else (size - kernel) // stride + 1


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one dimension: (before, after), the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvPolicy(Policy, kind="cnn"):
    """A conv net over image observations of ``obs_shape`` (C, H, W), as a population (see the module)."""

    # beside the atari backend's emulator threads (which sleep while the forward runs) the forward is most of
    # a step: on 2 cores it runs in about half the time on 2 torch threads
    threaded_forward = True

    def __init__(self, obs_shape: Sequence[int], act_dim: int, arch: str = "nature", padding: str = "valid",
                 obs_dim: int | None = None):
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown conv architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
        shape = tuple(int(s) for s in obs_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"policy kind 'cnn' needs image observations (channels, height, width), got {shape}")
        if obs_dim is not None and obs_dim != math.prod(shape):
            raise ValueError(f"obs_dim {obs_dim} does not match the image shape {shape}")
        self.obs_shape, self.arch, self.padding = shape, arch, padding
        self.obs_dim, self.act_dim = math.prod(shape), int(act_dim)
        convs, hidden = ARCHITECTURES[arch]
        channels, height, width = shape
        offset = 0
        # conv layers: (C, O, k, stride, pads (left, right, top, bottom), w start, b start, b end)
        self._convs: list[tuple[int, int, int, int, tuple[int, int, int, int], int, int, int]] = []
        for out, kernel, stride in convs:
            pads = (0, 0, 0, 0)
            if padding == "same":
                pads = (*_same_pads(width, kernel, stride), *_same_pads(height, kernel, stride))
            height, width = _out_size(height, kernel, stride, padding), _out_size(width, kernel, stride, padding)
            if min(height, width) < 1:
                raise ValueError(f"images of shape {shape} are too small for the {arch!r} network")
            b_start = offset + out * channels * kernel * kernel
            self._convs.append((channels, out, kernel, stride, pads, offset, b_start, b_start + out))
            offset, channels = b_start + out, out
        self.features = channels * height * width
        sizes = [self.features, *hidden, self.act_dim]
        self._dense: list[tuple[int, int, int, int, int]] = []  # (in, out, w start, b start, b end)
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
            b_start = offset + fan_in * fan_out
            self._dense.append((fan_in, fan_out, offset, b_start, b_start + fan_out))
            offset = b_start + fan_out
        self.num_params = offset

    # -- the population forward -------------------------------------------------------------------------

    def _images(self, obs: Tensor) -> Tensor:
        """[P, E, obs_dim] -> [P, E, C, H, W] in [0, 1]."""
        return obs.reshape(*obs.shape[:2], *self.obs_shape) / 255.0

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        P, E = obs.shape[:2]
        x = self._images(obs)
        for channels, out, kernel, stride, pads, w_start, b_start, b_end in self._convs:
            weight = params[:, w_start:b_start].reshape(P, out, channels, kernel, kernel)
            x = torch.relu(batched.conv2d(_pad(x, pads), weight, params[:, b_start:b_end], stride))
        x = x.reshape(P, E, self.features)
        last = len(self._dense) - 1
        for i, (fan_in, fan_out, w_start, b_start, b_end) in enumerate(self._dense):
            x = batched.linear(x, params[:, w_start:b_start].view(P, fan_in, fan_out), params[:, b_start:b_end])
            if i < last:
                x = torch.relu(x)
        return x

    def _forward_low_rank(self, members: LowRankParams, obs: Tensor) -> Tensor:
        # EGGROLL's members: per layer the shared conv / matmul over all P x E inputs plus the rank-r correction;
        # a layer whose noise is dense (too thin for low rank) builds its [P, ...] weights.
        P, E = obs.shape[:2]
        x = self._images(obs)
        for i, (channels, out, kernel, stride, pads, _, _, _) in enumerate(self._convs):
            weight, w_noise = members.block(2 * i)  # [O, C kh kw]
            bias, b_delta = members.block(2 * i + 1)
            assert isinstance(b_delta, Tensor)  # biases are dense blocks
            shape = (out, channels, kernel, kernel)
            if isinstance(w_noise, tuple):  # A [P, O, r] (up), B [P, C kh kw, r] (down)
                y = batched.conv2d_low_rank(_pad(x, pads), weight.view(shape), bias, w_noise[1], w_noise[0], b_delta,
                                            stride)
            else:
                y = batched.conv2d(_pad(x, pads), (weight + w_noise.view(P, *weight.shape)).view(P, *shape),
                                   bias + b_delta, stride)
            x = torch.relu(y)
        x = x.reshape(P, E, self.features)
        first, last = len(self._convs), len(self._dense) - 1
        for i in range(len(self._dense)):
            W, w_noise = members.block(2 * (first + i))
            b, b_delta = members.block(2 * (first + i) + 1)
            assert isinstance(b_delta, Tensor)  # biases are dense blocks
            x = batched.linear_members(x, W, b, w_noise, b_delta)
            if i < last:
                x = torch.relu(x)
        return x

    def param_layout(self) -> Layout:
        """Conv weights as [O, C kh kw] matrices, dense weights as [in, out]; biases 1-D."""
        blocks: list[ParamBlock] = []
        for channels, out, kernel, _, _, w_start, b_start, _ in self._convs:
            blocks += [ParamBlock(w_start, (out, channels * kernel * kernel)), ParamBlock(b_start, (out,))]
        for fan_in, fan_out, w_start, b_start, _ in self._dense:
            blocks += [ParamBlock(w_start, (fan_in, fan_out)), ParamBlock(b_start, (fan_out,))]
        return tuple(blocks)

    # -- single members ---------------------------------------------------------------------------------

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """PyTorch's default init of each layer (uniform within 1/sqrt(fan in)), the output layer x0.1: [D]."""
        draw_device = generator.device if generator is not None else device
        u = torch.rand(self.num_params, generator=generator, device=draw_device) * 2 - 1
        for channels, _, kernel, _, _, w_start, _, b_end in self._convs:
            u[w_start:b_end] *= 1 / math.sqrt(channels * kernel * kernel)
        last = len(self._dense) - 1
        for i, (fan_in, _, w_start, _, b_end) in enumerate(self._dense):
            u[w_start:b_end] *= 1 / math.sqrt(fan_in) * (OUTPUT_INIT_SCALE if i == last else 1.0)
        return u.to(device) if device is not None else u

    def to_module(self, flat_params: Tensor) -> nn.Module:
        """One member as a plain torch module: [B, C * H * W] (flat, any dtype) -> [B, act_dim]."""
        self.check_flat(flat_params)
        device, dtype = flat_params.device, flat_params.dtype
        layers: list[nn.Module] = [nn.Unflatten(1, self.obs_shape), _Scale(1 / 255.0)]
        for channels, out, kernel, stride, pads, w_start, b_start, b_end in self._convs:
            if any(pads):
                layers.append(nn.ZeroPad2d(pads))
            conv = nn.Conv2d(channels, out, kernel, stride, device=device, dtype=dtype)
            with torch.no_grad():
                conv.weight.copy_(flat_params[w_start:b_start].view(out, channels, kernel, kernel))
                conv.bias.copy_(flat_params[b_start:b_end])  # type: ignore[union-attr]  # bias=True
            layers += [conv, nn.ReLU()]
        layers.append(nn.Flatten())
        last = len(self._dense) - 1
        for i, (fan_in, fan_out, w_start, b_start, b_end) in enumerate(self._dense):
            linear = nn.Linear(fan_in, fan_out, device=device, dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(flat_params[w_start:b_start].view(fan_in, fan_out).T)
                linear.bias.copy_(flat_params[b_start:b_end])
            layers.append(linear)
            if i < last:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def _spec_args(self) -> dict[str, Any]:
        return {"obs_shape": list(self.obs_shape), "act_dim": self.act_dim, "arch": self.arch, "padding": self.padding}


class _Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


def _pad(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Zero padding of the last two dims of [P, N, C, H, W] (TensorFlow's SAME where the pads are uneven)."""
    if not any(pads):
        return x
    P, N = x.shape[:2]
    return F.pad(x.flatten(0, 1), pads).unflatten(0, (P, N))

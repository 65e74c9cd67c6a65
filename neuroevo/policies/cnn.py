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
import weakref
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuroevo.policies import batched
from neuroevo.policies import vbn as vbn_module
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
                 obs_dim: int | None = None, vbn: bool = False, reference: Tensor | str | None = None):
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
        # virtual batch normalization (neuroevo.policies.vbn): a gain and a bias per channel of each hidden layer,
        # after the plain network's parameters
        self.vbn = bool(vbn)
        self.plain_params = offset
        hidden_widths = [c[1] for c in self._convs] + [d[1] for d in self._dense[:-1]]
        self._vbn_slices: list[tuple[int, int]] = []  # (gain start, bias start) per hidden layer
        if self.vbn:
            for width in hidden_widths:
                self._vbn_slices.append((offset, offset + width))
                offset += 2 * width
        self.num_params = offset
        self.reference = self._checked_reference(reference)
        self._folded_cache: tuple[Any, int, Tensor] | None = None

    # -- the population forward -------------------------------------------------------------------------

    def _images(self, obs: Tensor) -> Tensor:
        """[P, E, obs_dim] -> [P, E, C, H, W] in [0, 1]."""
        return obs.reshape(*obs.shape[:2], *self.obs_shape) / 255.0

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        if self.vbn:
            params = self._folded(params)
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

    # -- virtual batch normalization ---------------------------------------------------------------------

    def _checked_reference(self, reference: Tensor | str | None) -> Tensor | None:
        """The VBN reference batch [R, obs_dim] (decoded from a spec's text), after one-line errors."""
        if reference is None:
            return None
        if not self.vbn:
            raise ValueError("a reference batch is for virtual batch normalization: pass vbn=True")
        if isinstance(reference, str):
            reference = vbn_module.decode(reference)
        if reference.ndim != 2 or reference.shape[1] != self.obs_dim:
            raise ValueError(f"the VBN reference batch must be [R, {self.obs_dim}], got {tuple(reference.shape)}")
        return reference

    def _folded(self, params: Tensor) -> Tensor:
        """The plain network's parameters [P, plain_params] with each member's VBN folded into its layers,
        computed once per parameter tensor (the rollout calls the forward with the same one every step)."""
        cache = self._folded_cache
        if cache is not None and cache[0]() is params and cache[1] == params._version:
            return cache[2]
        folded = self.fold(params)
        self._folded_cache = (weakref.ref(params), params._version, folded)
        return folded

    def fold(self, params: Tensor) -> Tensor:
        """[P, D] members with VBN -> [P, plain_params]: each hidden layer's weights and bias scaled by
        gain / sqrt(var + eps) and shifted by bias - mean * that, where mean and var are the member's own
        pre-activation statistics on the reference batch (per channel over the batch and the image)."""
        if self.reference is None:
            raise ValueError(f"{self!r}: virtual batch normalization needs its reference batch: collect one with "
                             "neuroevo.policies.vbn.collect_reference and pass reference=")
        P = params.shape[0]
        out = params[:, :self.plain_params].clone()
        ref = self.reference.to(params.device)
        x = self._images(ref.to(params.dtype)[None].expand(P, *ref.shape))  # [P, R, C, H, W], a view
        for i, (channels, width, kernel, stride, pads, w_start, b_start, b_end) in enumerate(self._convs):
            weight = params[:, w_start:b_start].reshape(P, width, channels, kernel, kernel)
            z = batched.conv2d(_pad(x, pads), weight, params[:, b_start:b_end], stride)  # [P, R, O, h, w]
            var, mean = torch.var_mean(z, dim=(1, 3, 4), correction=0)
            scale, shift = self._affine(params, i, mean, var)
            out[:, w_start:b_start] = (weight * scale[:, :, None, None, None]).reshape(P, -1)
            out[:, b_start:b_end] = params[:, b_start:b_end] * scale + shift
            x = torch.relu(z * scale[:, None, :, None, None] + shift[:, None, :, None, None])
        x = x.reshape(P, ref.shape[0], self.features)
        for j, (fan_in, fan_out, w_start, b_start, b_end) in enumerate(self._dense[:-1]):
            W = params[:, w_start:b_start].view(P, fan_in, fan_out)
            z = batched.linear(x, W, params[:, b_start:b_end])  # [P, R, out]
            var, mean = torch.var_mean(z, dim=1, correction=0)
            scale, shift = self._affine(params, len(self._convs) + j, mean, var)
            out[:, w_start:b_start] = (W * scale[:, None, :]).reshape(P, -1)
            out[:, b_start:b_end] = params[:, b_start:b_end] * scale + shift
            x = torch.relu(z * scale[:, None, :] + shift[:, None, :])
        return out

    def _affine(self, params: Tensor, layer: int, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
        """(scale, shift) [P, width] of hidden layer ``layer``: its gain / sqrt(var + eps), bias - mean * scale."""
        g_start, b_start = self._vbn_slices[layer]
        width = b_start - g_start
        scale = params[:, g_start:b_start] / torch.sqrt(var + vbn_module.EPS)
        return scale, params[:, b_start:b_start + width] - mean * scale

    def _plain(self) -> ConvPolicy:
        """The same network without VBN (what folded parameters run on)."""
        return ConvPolicy(self.obs_shape, self.act_dim, self.arch, self.padding)

    def _forward_low_rank(self, members: LowRankParams, obs: Tensor) -> Tensor:
        if self.vbn:
            raise ValueError(f"{self!r}: virtual batch normalization is built for dense members (ES, GA, ARS), "
                             "not EGGROLL's low-rank ones")
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
        for g_start, b_start in self._vbn_slices:
            blocks += [ParamBlock(g_start, (b_start - g_start,)), ParamBlock(b_start, (b_start - g_start,))]
        return tuple(blocks)

    # -- single members ---------------------------------------------------------------------------------

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """PyTorch's default init of each layer (uniform within 1/sqrt(fan in)), the output layer x0.1: [D]."""
        draw_device = generator.device if generator is not None else device
        u = torch.rand(self.num_params, generator=generator, device=draw_device) * 2 - 1
        u *= self._init_bound().to(u.device)
        for g_start, b_start in self._vbn_slices:  # VBN starts as the identity: gain 1, bias 0
            u[g_start:b_start] = 1.0
            u[b_start:b_start + (b_start - g_start)] = 0.0
        return u.to(device) if device is not None else u

    def init_std(self) -> Tensor:
        """init_params' std per parameter: each layer's uniform bound over sqrt(3); 0 for VBN's gains and biases."""
        return (self._init_bound(torch.float64) / math.sqrt(3)).to(torch.get_default_dtype())

    def _init_bound(self, dtype: torch.dtype | None = None) -> Tensor:
        """[D]: the bound of each parameter's uniform init, 1/sqrt(fan in) (the output layer's x0.1); 0 for VBN's
        gains and biases, which start fixed."""
        bound = torch.zeros(self.num_params, dtype=dtype)
        for channels, _, kernel, _, _, w_start, _, b_end in self._convs:
            bound[w_start:b_end] = 1 / math.sqrt(channels * kernel * kernel)
        last = len(self._dense) - 1
        for i, (fan_in, _, w_start, _, b_end) in enumerate(self._dense):
            bound[w_start:b_end] = 1 / math.sqrt(fan_in) * (OUTPUT_INIT_SCALE if i == last else 1.0)
        return bound

    def to_module(self, flat_params: Tensor) -> nn.Module:
        """One member as a plain torch module: [B, C * H * W] (flat, any dtype) -> [B, act_dim] (with VBN, its
        reference statistics folded into the layers)."""
        self.check_flat(flat_params)
        if self.vbn:
            return self._plain().to_module(self.fold(flat_params[None])[0])
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
        args: dict[str, Any] = {"obs_shape": list(self.obs_shape), "act_dim": self.act_dim, "arch": self.arch,
                                "padding": self.padding}
        if self.vbn:
            args["vbn"] = True
            args["reference"] = None if self.reference is None else vbn_module.encode(self.reference)
        return args

    def __repr__(self) -> str:
        reference = "" if self.reference is None else f", reference=[{self.reference.shape[0]} observations]"
        vbn = ", vbn=True" if self.vbn else ""
        return (f"ConvPolicy(obs_shape={list(self.obs_shape)}, act_dim={self.act_dim}, arch={self.arch!r}, "
                f"padding={self.padding!r}{vbn}{reference})")


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

"""Linear and Conv2d layers over a population, with no Python loop over members.

Two paths per layer, the inputs of member p being ``x[p]``:

- full rank: every member has its own weights (views of params [P, D]);
- low rank (EGGROLL, Sarkar et al. 2025, arXiv:2511.16652): member p's weight is ``W + A_p B_p^T``, and
  ``x (W + A_p B_p^T)^T = x W^T + ((x B_p) A_p^T)``: one matmul (or conv) with the shared W over all P x batch
  inputs, plus two thin per-member products of rank r. No member's weights are ever built.

Shapes: Linear inputs are [P, N, in] and weights are [in, out] (the MLP policy's storage; an ``nn.Linear``
weight [out, in] is passed as its transpose view). Conv2d inputs are [P, N, C, H, W] and weights are
``nn.Conv2d``'s [O, C, kh, kw]; ``stride`` and ``padding`` as in ``torch.nn.functional.conv2d``.

Conv2d's population forward is a grouped convolution (members as groups, ``groups = P``, the batch in
front): measured on the CPU against members-as-batch im2col + ``bmm`` (``neuroevo bench lowrank --conv``),
it was the faster of the two for the full-rank path, and for the thin per-member part of the low-rank path
(see docs/guides/low-rank-es.md for the figures).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Full rank: x [P, N, in], weight [P, in, out], bias [P, out] or None -> [P, N, out] (one ``baddbmm``)."""
    if bias is None:
        return torch.bmm(x, weight)
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


def linear_low_rank(x: Tensor, weight: Tensor, bias: Tensor | None, down: Tensor, up: Tensor,
                    bias_delta: Tensor | None = None) -> Tensor:
    """Low rank: member p computes ``x[p] (weight + down[p] up[p]^T) + bias + bias_delta[p]``.

    x [P, N, in]; weight [in, out] shared; bias [out] or None; down [P, in, r], up [P, out, r]; bias_delta
    [P, out] or None -> [P, N, out]. One [P N, in] x [in, out] matmul plus ``bmm`` s of width r.
    """
    P, N, fan_in = x.shape
    flat = x.reshape(P * N, fan_in)
    shared = (flat @ weight if bias is None else torch.addmm(bias, flat, weight)).view(P, N, -1)
    thin = torch.bmm(x, down)  # [P, N, r]
    if bias_delta is not None:
        # The bias delta as one more rank: [x down, 1] [up, bias_delta]^T, no extra pass over [P, N, out].
        thin = torch.cat([thin, thin.new_ones(P, N, 1)], 2)
        up = torch.cat([up, bias_delta.unsqueeze(2)], 2)
    return torch.baddbmm(shared, thin, up.transpose(1, 2))


def _members_as_groups(x: Tensor) -> Tensor:
    """[P, N, C, H, W] -> [N, P C, H, W]: members as the channel groups of a grouped convolution."""
    P, N, C, H, W = x.shape
    return x.transpose(0, 1).reshape(N, P * C, H, W)


def _groups_as_members(y: Tensor, P: int) -> Tensor:
    """[N, P O, H, W] -> [P, N, O, H, W]."""
    N, PO, H, W = y.shape
    return y.view(N, P, PO // P, H, W).transpose(0, 1)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] | str = 0) -> Tensor:
    """Full rank: x [P, N, C, H, W], weight [P, O, C, kh, kw], bias [P, O] or None -> [P, N, O, H', W'], as one
    grouped convolution with ``groups = P``."""
    P = x.shape[0]
    w = weight.reshape(P * weight.shape[1], *weight.shape[2:])
    b = None if bias is None else bias.reshape(-1)
    y = F.conv2d(_members_as_groups(x), w, b, stride=stride, padding=padding, groups=P)
    return _groups_as_members(y, P)


def conv2d_low_rank(x: Tensor, weight: Tensor, bias: Tensor | None, down: Tensor, up: Tensor,
                    bias_delta: Tensor | None = None, stride: int | tuple[int, int] = 1,
                    padding: int | tuple[int, int] | str = 0) -> Tensor:
    """Low rank: member p convolves with ``weight + (up[p] down[p]^T).view(weight.shape)`` (+ bias + bias_delta[p]).

    x [P, N, C, H, W]; weight [O, C, kh, kw] shared; bias [O] or None; down [P, C kh kw, r] (r filters per
    member), up [P, O, r] (their 1x1 mix into O channels); bias_delta [P, O] or None -> [P, N, O, H', W'].
    One convolution with the shared weight over all P x N inputs, one grouped convolution of r channels per
    member, and a per-member [O, r] mix: the perturbed filters are never built.
    """
    P, N, C, H, W = x.shape
    r = down.shape[2]
    shared = F.conv2d(x.reshape(P * N, C, H, W), weight, bias, stride=stride, padding=padding)
    shared = shared.view(P, N, *shared.shape[1:])
    filters = down.transpose(1, 2).reshape(P * r, C, *weight.shape[2:])
    thin = F.conv2d(_members_as_groups(x), filters, stride=stride, padding=padding, groups=P)  # [N, P r, H', W']
    h_out, w_out = thin.shape[2:]
    # The mix as one bmm over members: [P, O, r] x [P, r, N H' W'] (measured 10x faster than an einsum here).
    mixed = torch.bmm(up, thin.view(N, P, r, -1).permute(1, 2, 0, 3).reshape(P, r, -1))
    out = shared + mixed.view(P, -1, N, h_out, w_out).transpose(1, 2)
    if bias_delta is not None:
        out = out + bias_delta[:, None, :, None, None]
    return out


def conv2d_im2col(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
                  padding: int | tuple[int, int] = 0) -> Tensor:
    """:func:`conv2d` as members folded into the batch: im2col of all P x N inputs, then one ``bmm`` per
    population (kept as the alternative the benchmark measures; same arguments and result)."""
    P, N, C, H, W = x.shape
    O, _, kh, kw = weight.shape[1:]
    patches = F.unfold(x.reshape(P * N, C, H, W), (kh, kw), stride=stride, padding=padding)  # [P N, C kh kw, L]
    L = patches.shape[2]
    cols = patches.view(P, N, -1, L).transpose(2, 3).reshape(P, N * L, -1)
    y = torch.bmm(cols, weight.reshape(P, O, -1).transpose(1, 2))  # [P, N L, O]
    if bias is not None:
        y = y + bias.unsqueeze(1)
    h_out = (H + 2 * _pair(padding)[0] - kh) // _pair(stride)[0] + 1
    return y.view(P, N, h_out, L // h_out, O).permute(0, 1, 4, 2, 3)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def linear_members(x: Tensor, weight: Tensor, bias: Tensor | None, weight_noise: tuple[Tensor, Tensor] | Tensor,
                   bias_delta: Tensor | None) -> Tensor:
    """One dense layer for members in low-rank form (a block of
    :class:`~neuroevo.policies.lowrank.LowRankParams`): x [P, N, in], the shared weight [in, out] and bias [out],
    the weight's noise as factors (down [P, in, r], up [P, out, r]: :func:`linear_low_rank`, no member's weights
    built) or, for a layer too thin for low rank, a dense delta [P, in * out] (its [P, in, out] weights are
    built), and the bias delta [P, out] (bias and its delta None for a layer without bias) -> [P, N, out]."""
    if isinstance(weight_noise, tuple):
        return linear_low_rank(x, weight, bias, weight_noise[0], weight_noise[1], bias_delta)
    member_bias = None if bias is None or bias_delta is None else bias + bias_delta
    return linear(x, weight + weight_noise.view(-1, *weight.shape), member_bias)

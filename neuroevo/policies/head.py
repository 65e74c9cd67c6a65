"""The action head: how a policy's raw outputs become actions for a gymnasium action space.

    Discrete(n, start): raw [..., n] logits -> argmax + start: [...] int64
    Box(low, high, shape): raw [..., prod(shape)] -> clamp into [low, high]: [..., *shape]
"""

from __future__ import annotations

import math
from typing import Optional, cast

import gymnasium as gym
import torch
from torch import Tensor


def _describe(space: gym.Space) -> str:
    """A one-line name for a space; Box's own repr can print whole bound arrays over several lines."""
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    return " ".join(str(space).split())


def output_dim(action_space: gym.Space) -> int:
    """Raw outputs a policy needs: n logits for ``Discrete(n)``, prod(shape) for a ``Box``."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.Box):
        return math.prod(action_space.shape)
    raise ValueError(f"unsupported action space {_describe(action_space)}; use Discrete or Box")


def box_bounds(action_space: gym.spaces.Box, device=None, dtype=None) -> tuple[Tensor, Tensor]:
    """(low, high) of a Box as tensors of its shape on ``device`` in ``dtype``."""
    low = torch.as_tensor(action_space.low, device=device, dtype=dtype)
    high = torch.as_tensor(action_space.high, device=device, dtype=dtype)
    return low, high


def apply_head(
    raw: Tensor, start: Optional[Tensor] = None, low: Optional[Tensor] = None, high: Optional[Tensor] = None  # noqa: UP045
) -> Tensor:
    """The head itself, on resolved constants: with Box bounds ``low`` / ``high``, clamp into them
    ([..., prod(shape)] -> [..., *shape], the shape of ``low``); else argmax over the last dim +
    ``start`` (Discrete: [..., n] -> [...] int64). The rollout and deployed modules call this with
    constants resident on their device (``Optional`` rather than ``X | None``: TorchScript reads it)."""
    if low is None or high is None:
        if start is None:
            raise ValueError("apply_head needs start (Discrete) or low and high (Box)")
        return raw.argmax(-1) + start
    return torch.clamp(raw.reshape(raw.shape[:-1] + low.shape), low, high)


def to_env_action(raw: Tensor, action_space: gym.Space) -> Tensor:
    """Env actions from raw outputs. raw: [..., output_dim(space)] ->
    [...] int64 for ``Discrete`` (argmax + start), [..., *shape] in raw's dtype for ``Box`` (clamped)."""
    dim = output_dim(action_space)
    if raw.shape[-1:] != (dim,):
        raise ValueError(
            f"raw outputs of shape {tuple(raw.shape)} should end in {dim} for {_describe(action_space)}"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        return apply_head(raw, torch.tensor(int(action_space.start), device=raw.device))
    box = cast(gym.spaces.Box, action_space)  # check_fits has accepted only Discrete and Box
    return apply_head(raw, None, *box_bounds(box, device=raw.device, dtype=raw.dtype))


def check_fits(
    policy, action_space: gym.Space, obs_space: gym.Space | None = None, name: str | None = None
) -> None:
    """Raise a one-line ``ValueError`` unless ``policy`` (a :class:`~neuroevo.policies.Policy`) gives
    ``output_dim(action_space)`` outputs and takes prod(obs_space.shape) inputs (not checked when
    ``obs_space`` is None). ``name`` (e.g. the env id) only makes the message clearer."""
    owner = f"{name}'s" if name else "the"
    need = output_dim(action_space)
    if policy.act_dim != need:
        raise ValueError(
            f"policy outputs {policy.act_dim} values but {owner} action space {_describe(action_space)} "
            f"needs {need}"
        )
    if obs_space is None:
        return
    if obs_space.shape is None:
        raise ValueError(f"unsupported observation space {_describe(obs_space)}; it needs a fixed shape")
    obs_dim = math.prod(obs_space.shape)
    if policy.obs_dim != obs_dim:
        raise ValueError(
            f"policy takes {policy.obs_dim} inputs but {owner} observation space {_describe(obs_space)} "
            f"gives {obs_dim}"
        )

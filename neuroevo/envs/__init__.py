"""Batched environments with torch tensors at the boundary: ``make_env`` picks the backend."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping

import gymnasium as gym
import torch

from neuroevo.envs.atari import AtariVectorEnv, is_atari
from neuroevo.envs.base import EpisodeState, TorchVectorEnv, VectorEnv
from neuroevo.envs.check import EnvContractError, EnvContractWarning, check_env
from neuroevo.envs.classic import TORCH_ENVS
from neuroevo.envs.gym_backend import GymVectorEnv
from neuroevo.envs.mujoco import MUJOCO_ENVS
from neuroevo.envs.user import check_user_env, is_user_env, resolve_env_id
from neuroevo.envs.warp import WARP_ENVS

BACKENDS = ("auto", "torch", "mujoco", "warp", "atari", "gymnasium")


def default_device() -> torch.device:
    """The GPU where there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device=None) -> torch.device:
    """``device`` as a ``torch.device`` (None: :func:`default_device`); a one-line ``ValueError`` for a
    malformed name or a CUDA device this machine does not have."""
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but this torch has no CUDA device available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    return device


def _mujoco_available() -> bool:
    return importlib.util.find_spec("mujoco") is not None


def resolve_backend(env_id: str, backend: str = "auto") -> str:
    """The backend ``make_env`` uses: for ``"auto"``, torch-native where there is one, then the
    batched MuJoCo envs (when the mujoco package is installed), ale-py's vector env for ``ALE/...`` ids, else
    gymnasium."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if env_id in TORCH_ENVS:
        return "torch"
    if env_id in MUJOCO_ENVS and _mujoco_available():
        return "mujoco"
    if is_atari(env_id):
        return "atari"
    return "gymnasium"


#: the backends with a table of their own envs: backend -> (id -> constructor, what an entry is, a hint)
_TABLES: dict[str, tuple[Mapping[str, Callable[..., VectorEnv]], str, str]] = {
    "torch": (TORCH_ENVS, "torch-native env", " (use backend='gymnasium' for other ids)"),
    "mujoco": (MUJOCO_ENVS, "batched MuJoCo env", ""),
    "warp": (WARP_ENVS, "MuJoCo Warp env", ""),
}


def make_env(
    env_id: str,
    num_envs: int,
    device=None,
    backend: str = "auto",
    num_threads: int | None = None,
    *,
    max_episode_steps: int | None = None,
    entry_point: str | None = None,
    **kwargs,
) -> VectorEnv:
    """A batched env of ``num_envs`` copies of ``env_id`` whose tensors live on ``device``.

    Every backend keeps one contract (finished episodes are sticky, resets go by mask, a start state is a
    function of its seed; see :mod:`neuroevo.envs.base`), which :func:`check_env` checks.

    Args:
        backend: ``"torch"`` (torch-native, GPU-resident: CartPole-v1, Pendulum-v1, Acrobot-v1,
            MountainCarContinuous-v0), ``"mujoco"`` (gymnasium's -v5 MuJoCo tasks stepped on a
            thread pool: Swimmer, Hopper, HalfCheetah, Walker2d, Ant, Humanoid, InvertedPendulum,
            InvertedDoublePendulum, Reacher), ``"warp"`` (the same tasks on MuJoCo Warp, N worlds stepped
            together on ``device``, a GPU or, slowly, the CPU; needs ``pip install 'neuroevo[warp]'``; never
            picked by ``"auto"``), ``"atari"`` (``ALE/<Game>-v5`` ids from pixels on ale-py's C++ vector env, with
            the DQN / Deep Neuroevolution preprocessing: :mod:`neuroevo.envs.atari`; needs
            ``pip install 'neuroevo[atari]'``), ``"gymnasium"`` (any registered gymnasium id through
            ``gymnasium.vector``), or ``"auto"`` (see :func:`resolve_backend`).
        device: where observations, rewards and flags live (and where torch-native envs compute);
            default: the GPU where there is one.
        num_threads: physics threads of the mujoco backend, emulator threads of the atari backend (default: the
            cores available; the other backends do not use it).
        max_episode_steps: the time limit that truncates an episode, for every backend (None: gymnasium's
            registered limit of ``env_id``).
        entry_point: ``"package.module:Class"``, an env class nobody registered: registered with gymnasium as
            ``env_id`` first (:func:`~neuroevo.envs.user.resolve_env_id`). ``env_id`` may also be
            ``"package:EnvId"``: gymnasium's own meaning, import ``package`` (which registers ``EnvId``) first.
        kwargs: passed to the backend (e.g. ``dtype`` for torch, mujoco and warp envs, ``nconmax`` / ``njmax`` /
            ``graph`` for warp envs, ``vectorization_mode`` or env arguments for gymnasium).
    """
    if entry_point is not None or ":" in env_id:
        env_id = resolve_env_id(env_id, entry_point)
    backend = resolve_backend(env_id, backend)
    if num_envs <= 0:
        raise ValueError(f"num_envs must be positive, got {num_envs}")
    if max_episode_steps is not None:
        if max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        kwargs["max_episode_steps"] = int(max_episode_steps)
    device = resolve_device(device)
    if backend in _TABLES:
        table, what, hint = _TABLES[backend]
        if env_id not in table:
            raise ValueError(f"no {what} {env_id!r}; the {backend} backend has {', '.join(table)}{hint}")
        if backend == "mujoco":
            kwargs["num_threads"] = num_threads
        return table[env_id](num_envs, device=device, **kwargs)
    if backend == "atari":
        return AtariVectorEnv(env_id, num_envs, device=device, num_threads=num_threads, **kwargs)
    if env_id not in gym.registry:
        raise ValueError(
            f"unknown env id {env_id!r}: neither a torch-native env ({', '.join(TORCH_ENVS)}) "
            "nor registered with gymnasium"
        )
    return GymVectorEnv(env_id, num_envs, device=device, **kwargs)


__all__ = [
    "AtariVectorEnv",
    "BACKENDS",
    "EnvContractError",
    "EnvContractWarning",
    "EpisodeState",
    "GymVectorEnv",
    "TORCH_ENVS",
    "TorchVectorEnv",
    "VectorEnv",
    "check_env",
    "check_user_env",
    "is_user_env",
    "resolve_env_id",
    "default_device",
    "MUJOCO_ENVS",
    "WARP_ENVS",
    "make_env",
    "resolve_backend",
    "resolve_device",
]

"""A MuJoCo task: what defines one of gymnasium's -v5 MuJoCo envs, apart from the engine that steps it.

A task (a :class:`MujocoTask` subclass, see :mod:`~neuroevo.envs.mujoco.planar`, ``spatial`` and ``classic``)
names its model file, frame skip, time limit and the ``MjData`` fields it reads, and implements three
functions over the whole batch: ``initial_state(u)``, ``observe(now)`` and ``reward(before, now, action)``.
An engine loads the model, makes the task with it and the array type it computes on, and steps the
physics: :class:`~neuroevo.envs.mujoco.base.MujocoVectorEnv` (N ``MjData`` on CPU threads, float64 numpy
arrays) or :class:`~neuroevo.envs.warp.base.WarpVectorEnv` (N MuJoCo Warp worlds, torch tensors on the
device). The task math is written once, against the names numpy and torch share (:func:`array_namespace`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
import torch

ASSETS = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"
#: what the task math computes on: float64 numpy arrays in the mujoco engine, torch tensors in the warp engine
Array: TypeAlias = np.ndarray | torch.Tensor
#: gathered ``MjData`` fields by name, each [N, ...]
Fields: TypeAlias = Mapping[str, Array]
#: ``MjData`` fields that only ``mj_rnePostConstraint`` computes (gymnasium calls it after every step); an engine
#: computes them only for tasks that read them
POST_CONSTRAINT_FIELDS = frozenset({"cfrc_ext", "cfrc_int", "cacc"})


def import_mujoco():
    """The ``mujoco`` module, or a one-line error saying how to install it."""
    try:
        import mujoco
    except ImportError:
        raise ValueError("the mujoco backend needs the mujoco package: pip install mujoco") from None
    return mujoco


def load_model(xml: str):
    """The ``MjModel`` of ``xml``, a model file in gymnasium's mujoco assets (gymnasium's own -v5 models)."""
    return import_mujoco().MjModel.from_xml_path(str(ASSETS / xml))


def array_namespace(x: Array) -> Any:
    """The module that computes on array ``x``: torch for tensors, numpy otherwise.

    The tasks' math (observation, reward terms, termination, reset noise) is written once against the
    names numpy and torch share (``xp.concatenate(..., axis=1)``, ``xp.clip``, ``xp.linalg.norm``, ...):
    the mujoco engine runs it on float64 numpy arrays, the warp engine on tensors on the device.
    """
    return torch if isinstance(x, torch.Tensor) else np


def copy(x: Array) -> Array:
    """A copy of array ``x`` that later writes to ``x`` leave alone (numpy ``copy``, torch ``clone``)."""
    return x.clone() if isinstance(x, torch.Tensor) else x.copy()


def normal_from_uniforms(u: Array) -> Array:
    """Standard normals from uniforms (Box-Muller): u [N, 2k] in [0, 1) -> [N, k] (numpy or torch)."""
    xp = array_namespace(u)
    u1, u2 = u[:, 0::2], u[:, 1::2]
    return xp.sqrt(-2.0 * xp.log1p(-u1)) * xp.cos(2.0 * math.pi * u2)


class MujocoTask:
    """Base of the MuJoCo tasks. A subclass sets the class attributes and implements ``initial_state``,
    ``observe`` and ``reward`` over batched arrays (N envs), using only names numpy and torch share and
    model constants through :meth:`constant`, so that every engine runs the same code.

    Class attributes:
        spec_id: gymnasium id it mirrors, e.g. "Hopper-v5".
        xml: model file in gymnasium's mujoco assets.
        frame_skip: physics steps per env step.
        max_episode_steps: gymnasium's registered time limit.
        fields: ``MjData`` arrays the task reads, gathered by the engine into ``now`` as ``[N, ...]`` arrays
            after every step; ``qpos`` and ``qvel`` always.
        before_fields: the fields ``reward`` reads from before the step (for displacements); only these are
            copied each step.
        num_reset_uniforms: uniforms per env that ``initial_state`` consumes.
        obs_dim: observation size.

    Args:
        model: the loaded ``MjModel`` (the engine's, with any engine-specific option already applied).
        device: None for float64 numpy arrays (the mujoco engine), or the torch device the engine computes on
            (the warp engine): ``init_qpos`` / ``init_qvel`` are then float64 tensors there and
            :meth:`constant` gives tensors of ``dtype`` there.
        dtype: float dtype of :meth:`constant`'s tensors (with a ``device`` only).
    """

    spec_id: str
    xml: str
    frame_skip: int
    max_episode_steps: int
    fields: tuple[str, ...] = ()
    before_fields: tuple[str, ...] = ("qpos",)
    num_reset_uniforms: int = 0
    obs_dim: int

    def __init__(self, model, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64):
        self.model = model
        self.device = None if device is None else torch.device(device)
        self.dtype = dtype
        self.dt = model.opt.timestep * self.frame_skip
        # float64 in both array types: the start states are drawn in float64 (an engine computing in float32
        # casts them when it writes them into its worlds)
        self.init_qpos: Array
        self.init_qvel: Array
        if self.device is None:
            self.init_qpos = np.array(model.qpos0, dtype=np.float64)
            self.init_qvel = np.zeros(model.nv)
        else:
            self.init_qpos = torch.as_tensor(np.array(model.qpos0), dtype=torch.float64, device=self.device)
            self.init_qvel = torch.zeros(model.nv, dtype=torch.float64, device=self.device)
        self._constants: dict[str, torch.Tensor] = {}

    # -- the task's three functions over the batch ---------------------------------------------------
    def initial_state(self, u: Array) -> tuple[Array, Array]:
        """Start (qpos [N, nq], qvel [N, nv]) from uniforms u [N, num_reset_uniforms] in [0, 1)."""
        raise NotImplementedError

    def observe(self, now: Fields) -> Array:
        """Observations [N, obs_dim] from the gathered fields ``now`` (name -> [N, ...])."""
        raise NotImplementedError

    def reward(self, before: Fields, now: Fields, action: Array) -> tuple[Array, Array, Fields]:
        """(reward [N], terminated [N] bool, {term name: [N, ...]}) for the step from ``before`` to ``now``
        under ``action`` [N, nu] (the action as given, as gymnasium's control costs use it). The terms are
        the entries of gymnasium's step ``info``."""
        raise NotImplementedError

    # -- what the engine and the math read ---------------------------------------------------------
    def constant(self, name: str) -> Any:
        """The model constant ``model.<name>`` (e.g. "body_mass") as the array type the task math runs on:
        the model's own numpy array, or a tensor of ``dtype`` on ``device`` (made once)."""
        if self.device is None:
            return getattr(self.model, name)
        if name not in self._constants:
            array = np.array(getattr(self.model, name))
            self._constants[name] = torch.as_tensor(array, dtype=self.dtype, device=self.device)
        return self._constants[name]

    def spaces(self) -> tuple[gym.spaces.Box, gym.spaces.Box]:
        """(observation space, action space) of one env, as gymnasium's: float64 observations of
        ``obs_dim``, float32 actions in the model's actuator control ranges."""
        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), dtype=np.float64)
        return obs_space, gym.spaces.Box(low=low, high=high, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec_id!r})"

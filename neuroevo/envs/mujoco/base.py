"""Batched MuJoCo envs: N simulations stepped on a thread pool, observations and rewards computed
batched in numpy, tensors at the boundary.

Each env has its own ``MjData`` over one shared ``MjModel`` loaded from gymnasium's own -v5 model
file. ``mujoco.mj_step`` releases the GIL, so a pool of ``num_threads`` threads steps disjoint chunks
of envs at the physics engine's speed; the per-task code (observation, reward terms, termination,
reset noise) then runs once over the whole batch, on arrays gathered from the ``MjData`` fields the
task declares. Only running episodes are stepped: a finished env stays frozen until it is reset.

Autoreset follows gymnasium's ``AutoresetMode.DISABLED`` (as the torch envs): after terminated or
truncated an env returns its last observation, reward 0 and the same flags until
``reset(options={"reset_mask": mask})``.

Bad input is reported per env instead of crashing the batch: a non-finite action entry is replaced by
0 and counted (``info["nonfinite_actions"]``); a physics divergence (MuJoCo's bad-qacc / bad-qpos /
bad-qvel warnings, or a non-finite state) terminates that env with reward NaN (``info["diverged"]``),
so its member ranks last.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import VectorEnv
from neuroevo.seeding import hash_uniform

ASSETS = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"


def import_mujoco():
    """The ``mujoco`` module, or a one-line error saying how to install it."""
    try:
        import mujoco
    except ImportError:
        raise ValueError("the mujoco backend needs the mujoco package: pip install mujoco") from None
    return mujoco


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def array_namespace(x):
    """The module that computes on array ``x``: torch for tensors, numpy otherwise.

    The tasks' math (observation, reward terms, termination, reset noise) is written once against the
    names numpy and torch share (``xp.concatenate(..., axis=1)``, ``xp.clip``, ``xp.linalg.norm``, ...):
    this backend runs it on float64 numpy arrays, the warp backend on tensors on the device.
    """
    return torch if isinstance(x, torch.Tensor) else np


def copy(x):
    """A copy of array ``x`` that later writes to ``x`` leave alone (numpy ``copy``, torch ``clone``)."""
    return x.clone() if isinstance(x, torch.Tensor) else x.copy()


def normal_from_uniforms(u):
    """Standard normals from uniforms (Box-Muller): u [N, 2k] in [0, 1) -> [N, k] (numpy or torch)."""
    xp = array_namespace(u)
    u1, u2 = u[:, 0::2], u[:, 1::2]
    return xp.sqrt(-2.0 * xp.log1p(-u1)) * xp.cos(2.0 * math.pi * u2)


class MujocoVectorEnv(VectorEnv):
    """Base of the batched MuJoCo tasks. A task subclass sets the class attributes and implements
    ``initial_state``, ``observe`` and ``reward`` over batched numpy arrays.

    Class attributes:
        spec_id: gymnasium id it mirrors, e.g. "Hopper-v5".
        xml: model file in gymnasium's mujoco assets.
        frame_skip: physics steps per env step.
        max_episode_steps: gymnasium's registered time limit.
        fields: ``MjData`` arrays the task reads, gathered into ``[N, ...]`` arrays after every step.
            ``qpos`` and ``qvel`` always.
        before_fields: the gathered fields ``reward`` reads from before the step (for displacements);
            only these are copied each step.
        num_reset_uniforms: uniforms per env that ``initial_state`` consumes.
        obs_dim_: observation size.

    The three functions use only names numpy and torch share (see :func:`array_namespace`), and model
    constants through :meth:`constant`, so the warp backend runs the same code on device tensors.

    Args:
        num_envs: N.
        device: where the returned tensors live.
        num_threads: stepping threads (default: the cores available).
        dtype: float dtype of returned observations and rewards (the observation space is gymnasium's,
            float64; float32 tensors are what a policy forward wants).
    """

    spec_id: str
    xml: str
    frame_skip: int
    max_episode_steps: int
    fields: tuple[str, ...] = ()
    before_fields: tuple[str, ...] = ("qpos",)
    num_reset_uniforms: int = 0
    obs_dim_: int
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}

    def __init__(self, num_envs: int, device=None, num_threads: int | None = None, dtype=torch.float32):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        if num_threads is not None and num_threads <= 0:
            raise ValueError(f"num_threads must be positive, got {num_threads}")
        self._mujoco = mujoco = import_mujoco()
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        self.dtype = dtype
        self.model = mujoco.MjModel.from_xml_path(str(ASSETS / self.xml))
        self.datas = [mujoco.MjData(self.model) for _ in range(self.num_envs)]
        self.init_qpos = self.datas[0].qpos.copy()
        self.init_qvel = self.datas[0].qvel.copy()
        self.dt = self.model.opt.timestep * self.frame_skip
        self.num_threads = min(num_threads or default_threads(), self.num_envs)
        self._pool = ThreadPoolExecutor(self.num_threads - 1) if self.num_threads > 1 else None
        self.physics_threads = self.num_threads if self._pool is not None else 0
        self._fields = tuple(dict.fromkeys(("qpos", "qvel", *self.fields)))
        self.now = {f: np.zeros((self.num_envs, *getattr(self.datas[0], f).shape)) for f in self._fields}
        # MuJoCo's warning counters per env, gathered with the fields: a divergence shows as a count that moved.
        self._warnings = np.zeros((self.num_envs, len(self.datas[0].warning.number)), dtype=np.int64)
        # Force-related quantities (cfrc_ext, cfrc_int, cacc) are only computed on request, as gymnasium does
        # after every step; tasks that do not read them skip the call (it changes nothing else in the state).
        self._post_constraint = not {"cfrc_ext", "cfrc_int", "cacc"}.isdisjoint(self._fields)
        # Per env: its MjData, its ctrl array and (destination row, MjData array) pairs, all views made once,
        # so the stepping threads run as little Python per env as possible (it holds the GIL).
        self._slots = [
            (
                data,
                data.ctrl,
                tuple((self.now[f][i], getattr(data, f)) for f in self._fields)
                + ((self._warnings[i], data.warning.number),),
            )
            for i, data in enumerate(self.datas)
        ]
        self._running = np.zeros(self.num_envs, dtype=bool)
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._truncated = np.zeros(self.num_envs, dtype=bool)
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._obs = np.zeros((self.num_envs, self.obs_dim_))
        self._counts = {"nonfinite_actions": 0, "diverged": 0}
        self._init_seeds("cpu")  # start states are drawn on the CPU, where the physics runs
        bad = mujoco.mjtWarning
        self._bad_warnings = np.array([int(w) for w in (bad.mjWARN_BADQACC, bad.mjWARN_BADQPOS, bad.mjWARN_BADQVEL)])
        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim_,), dtype=np.float64)
        self._init_spaces(obs_space, gym.spaces.Box(low=low, high=high, dtype=np.float32))

    # -- the task's three functions over the batch ---------------------------------------------------
    def initial_state(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start (qpos [N, nq], qvel [N, nv]) from uniforms u [N, num_reset_uniforms] in [0, 1)."""
        raise NotImplementedError

    def observe(self, now: dict[str, np.ndarray]) -> np.ndarray:
        """Observations [N, obs_dim] from the gathered fields."""
        raise NotImplementedError

    def reward(
        self, before: dict[str, np.ndarray], now: dict[str, np.ndarray], action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(reward [N], terminated [N] bool, {term name: [N]}) for the step from ``before`` to ``now``
        under ``action`` [N, nu] (the action as given, as gymnasium's control costs use it)."""
        raise NotImplementedError

    def constant(self, name: str):
        """The model constant ``model.<name>`` (e.g. "body_mass") as the array type the task math runs on:
        numpy here."""
        return getattr(self.model, name)

    # -- physics on the thread pool --------------------------------------------------------------
    def _gather(self, i: int) -> None:
        for dst, src in self._slots[i][2]:
            dst[...] = src

    def _step_chunk(self, indices: np.ndarray, ctrl: np.ndarray) -> None:
        mujoco, model, frame_skip, post_constraint = self._mujoco, self.model, self.frame_skip, self._post_constraint
        for i in indices:
            data, data_ctrl, pairs = self._slots[i]
            data_ctrl[:] = ctrl[i]
            mujoco.mj_step(model, data, nstep=frame_skip)
            if post_constraint:
                mujoco.mj_rnePostConstraint(model, data)
            for dst, src in pairs:
                dst[...] = src

    def _map(self, fn, indices: np.ndarray, *args) -> None:
        if self._pool is None or len(indices) < 2:
            fn(indices, *args)
            return
        chunks = np.array_split(indices, min(self.num_threads, len(indices)))
        # The calling thread takes the first chunk itself instead of idling until the pool is done.
        futures = [self._pool.submit(fn, chunk, *args) for chunk in chunks[1:]]
        fn(chunks[0], *args)
        for future in futures:
            future.result()

    # -- gymnasium's vector API --------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        mask, state = self._reset_bookkeeping(seed, options)
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(torch.as_tensor(mask).cpu(), bool)
        if state is not None:
            qpos, qvel = (
                torch.as_tensor(state[k]).detach().cpu().numpy().astype(np.float64).reshape(self.num_envs, -1)
                for k in ("qpos", "qvel")
            )
        else:
            u = hash_uniform(self._seeds, self._resets, self.num_reset_uniforms, dtype=torch.float64).numpy()
            qpos, qvel = self.initial_state(u)
        self._map(self._reset_chunk, np.flatnonzero(mask), qpos, qvel)
        self._running[mask] = True
        self._terminated[mask] = False
        self._truncated[mask] = False
        self._elapsed[mask] = 0
        self._obs = np.where(mask[:, None], self.observe(self.now), self._obs)
        return self._tensor(self._obs), {}

    def _reset_chunk(self, indices: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        mujoco = self._mujoco
        for i in indices:
            data = self.datas[i]
            mujoco.mj_resetData(self.model, data)
            data.qpos[:] = qpos[i]
            data.qvel[:] = qvel[i]
            mujoco.mj_forward(self.model, data)
            self._gather(i)

    def step(self, actions):
        if not self._reset_once:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions)
        self.check_actions(actions)
        action = actions.detach().cpu().numpy().astype(np.float64)
        nonfinite = ~np.isfinite(action).all(axis=1)
        action = np.where(np.isfinite(action), action, 0.0)  # MuJoCo must never see NaN controls
        running = np.flatnonzero(self._running)
        before = {f: self.now[f].copy() for f in self.before_fields}
        warnings_before = self._warnings[:, self._bad_warnings]
        self._map(self._step_chunk, running, action)
        # MuJoCo answers a bad qacc / qpos / qvel with a warning and a reset of that env's state: unstable.
        diverged = (self._warnings[:, self._bad_warnings] != warnings_before).any(axis=1)
        diverged |= ~(np.isfinite(self.now["qpos"]).all(axis=1) & np.isfinite(self.now["qvel"]).all(axis=1))
        diverged &= self._running

        reward, terminated, terms = self.reward(before, self.now, action)
        obs = self.observe(self.now)
        stepped = self._running.copy()
        reward = np.where(diverged, np.nan, np.where(stepped, reward, 0.0))
        terms = {k: np.where(stepped.reshape(-1, *[1] * (np.ndim(v) - 1)), v, 0.0) for k, v in terms.items()}
        self._elapsed[stepped] += 1
        self._terminated |= stepped & (np.asarray(terminated, bool) | diverged)
        self._truncated |= stepped & (self._elapsed >= self.max_episode_steps)  # both may hold, as in gymnasium
        self._obs = np.where(stepped[:, None], obs, self._obs)
        self._running &= ~(self._terminated | self._truncated)
        self._counts["nonfinite_actions"] += int((nonfinite & stepped).sum())
        self._counts["diverged"] += int(diverged.sum())
        info: dict[str, Any] = {"reward_terms": terms, "nonfinite_actions": nonfinite, "diverged": diverged}
        return (
            self._tensor(self._obs),
            self._tensor(reward),
            torch.as_tensor(self._terminated.copy(), device=self.device),
            torch.as_tensor(self._truncated.copy(), device=self.device),
            info,
        )

    def problem_counts(self) -> dict[str, int]:
        """Env steps whose action had a NaN/inf entry, and episodes ended by a physics divergence."""
        return dict(self._counts)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=self.dtype).to(self.device)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @property
    def obs_dim(self) -> int:
        return self.obs_dim_

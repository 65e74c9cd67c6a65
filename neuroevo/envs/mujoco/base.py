"""The mujoco engine: N MuJoCo simulations of one task stepped on a thread pool, the task's math batched in
numpy, torch tensors at the boundary.

A batched env is a task composed into an engine: ``MujocoVectorEnv(Hopper, num_envs)``, where the task
(:class:`~neuroevo.envs.mujoco.task.MujocoTask`) defines the model file, frame skip, observation, reward terms,
termination and reset noise, and the engine steps the physics and keeps the episodes. ``MUJOCO_ENVS`` holds one
``functools.partial(MujocoVectorEnv, task)`` per gymnasium id; the warp engine
(:class:`~neuroevo.envs.warp.base.WarpVectorEnv`) composes the same task classes.

Each env has its own ``MjData`` over one shared ``MjModel`` loaded from gymnasium's own -v5 model file.
``mujoco.mj_step`` releases the GIL, so a pool of ``num_threads`` threads steps disjoint chunks of envs at the
physics engine's speed; the task's functions then run once over the whole batch, on float64 arrays gathered
from the ``MjData`` fields the task declares. Only running episodes are stepped: a finished env's ``MjData``
stays as it was until it is reset.

The episodes follow the contract of :mod:`neuroevo.envs.base` through its :class:`EpisodeState`, kept on the
CPU where the physics runs: no autoreset; a finished env returns its last observation, reward 0 and the same
flags until ``reset(options={"reset_mask": mask})``.

Bad input is reported per env instead of crashing the batch: a non-finite action entry is replaced by 0 and
counted (``info["nonfinite_actions"]``); a physics divergence (MuJoCo's bad-qacc / bad-qpos / bad-qvel warnings,
or a non-finite state) terminates that env with reward NaN (``info["diverged"]``), so its member ranks last.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import EpisodeState, VectorEnv, as_mask
from neuroevo.envs.mujoco.physics import BatchPhysics, DataPhysics, default_threads, has_batch
from neuroevo.envs.mujoco.task import POST_CONSTRAINT_FIELDS, MujocoTask, import_mujoco, load_model
from neuroevo.seeding import hash_uniform


class MujocoVectorEnv(VectorEnv):
    """N MuJoCo simulations of ``task`` on CPU threads (see the module's docstring).

    Args:
        task: the task class (:class:`MujocoTask` subclass); the engine loads its ``xml`` and makes it as
            ``task(model)``: float64 numpy arrays. The made task is ``env.task``.
        num_envs: N.
        device: where the returned tensors live.
        num_threads: stepping threads (default: the cores available).
        dtype: float dtype of returned observations and rewards (the observation space is gymnasium's,
            float64; float32 tensors are what a policy forward wants).
        max_episode_steps: the time limit (None: the task's registered one).

    Shapes (N = ``num_envs``): obs [N, obs_dim], reward / terminated / truncated [N]; ``info`` holds
    ``reward_terms`` (gymnasium's step ``info`` entries, each [N, ...]), ``nonfinite_actions`` and ``diverged``
    ([N] bool), as numpy arrays. ``env.now`` holds the gathered fields (name -> [N, ...] float64), ``env.datas``
    the N ``MjData``.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    episodes: EpisodeState  # made by the constructor
    #: step one ``MjData`` per env (:class:`DataPhysics`) even where a ``mujoco.batch`` would do
    per_env_data = False

    def __init__(self, task: type[MujocoTask], num_envs: int, device=None, num_threads: int | None = None,
                 dtype=torch.float32, max_episode_steps: int | None = None):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        if num_threads is not None and num_threads <= 0:
            raise ValueError(f"num_threads must be positive, got {num_threads}")
        self._mujoco = mujoco = import_mujoco()
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        self.dtype = dtype
        self.model = load_model(task.xml)
        self.task = task(self.model)
        self.spec_id = self.task.spec_id
        self.num_threads = min(num_threads or default_threads(), self.num_envs)
        self.physics_threads = self.num_threads if self.num_threads > 1 else 0
        # Force-related quantities (cfrc_ext, cfrc_int, cacc) are only computed on request, as gymnasium does
        # after every step; tasks that do not read them skip the call (it changes nothing else in the state).
        post_constraint = not POST_CONSTRAINT_FIELDS.isdisjoint(self.task.fields)
        args = (mujoco, self.model, self.num_envs, self.num_threads, self.task.frame_skip, self.task.fields)
        self.physics: BatchPhysics | DataPhysics
        if post_constraint or self.per_env_data or not has_batch():
            self.physics = DataPhysics(*args, post_constraint=post_constraint)
        else:
            self.physics = BatchPhysics(*args)
        self.now = self.physics.now
        self.datas = self.physics.datas
        self.max_episode_steps = self.task.max_episode_steps if max_episode_steps is None else max_episode_steps
        # on the CPU, where the physics runs and where the envs to step are chosen from ``running``
        self.episodes = EpisodeState(self.num_envs, self.task.obs_dim, self.max_episode_steps, "cpu", dtype)
        self._counts = {"nonfinite_actions": 0, "diverged": 0}
        self._init_seeds("cpu")  # start states are drawn on the CPU, where the physics runs
        bad = mujoco.mjtWarning
        self._bad_warnings = np.array([int(w) for w in (bad.mjWARN_BADQACC, bad.mjWARN_BADQPOS, bad.mjWARN_BADQVEL)])
        self._init_spaces(*self.task.spaces())

    # -- gymnasium's vector API --------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        mask, state = self._reset_bookkeeping(seed, options)
        mask = as_mask(mask, self.num_envs, "cpu")
        qpos: Any
        qvel: Any
        if state is not None:
            qpos, qvel = (
                torch.as_tensor(state[k]).detach().cpu().numpy().astype(np.float64).reshape(self.num_envs, -1)
                for k in ("qpos", "qvel")
            )
        else:
            u = hash_uniform(self._seeds, self._resets, self.task.num_reset_uniforms, dtype=torch.float64).numpy()
            qpos, qvel = self.task.initial_state(u)
        indices = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask.numpy())
        self.physics.reset(indices, qpos, qvel)
        obs = self.episodes.reset(mask, torch.as_tensor(self.task.observe(self.now)))
        return obs.to(self.device), {}

    def step(self, actions):
        if not self._reset_once:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions)
        self.check_actions(actions)
        action = actions.detach().cpu().numpy().astype(np.float64)
        nonfinite = ~np.isfinite(action).all(axis=1)
        action = np.where(np.isfinite(action), action, 0.0)  # MuJoCo must never see NaN controls
        running = self.episodes.running.numpy()  # finished envs are not stepped: their MjData stay as they are
        before = {f: self.now[f].copy() for f in self.task.before_fields}
        warnings_before = self.physics.warnings[:, self._bad_warnings]
        self.physics.step(running, action)
        # MuJoCo answers a bad qacc / qpos / qvel with a warning and a reset of that env's state: unstable.
        diverged = (self.physics.warnings[:, self._bad_warnings] != warnings_before).any(axis=1)
        diverged |= ~(np.isfinite(self.now["qpos"]).all(axis=1) & np.isfinite(self.now["qvel"]).all(axis=1))
        diverged &= running

        reward, terminated, terms = self.task.reward(before, self.now, action)
        obs, reward, terminated, truncated = self.episodes.step(
            torch.as_tensor(self.task.observe(self.now)),
            torch.as_tensor(reward),
            torch.as_tensor(np.asarray(terminated, bool)),
            diverged=torch.as_tensor(diverged),
        )
        terms = {k: np.where(running.reshape(-1, *[1] * (np.ndim(v) - 1)), v, 0.0) for k, v in terms.items()}
        self._counts["nonfinite_actions"] += int((nonfinite & running).sum())
        self._counts["diverged"] += int(diverged.sum())
        info: dict[str, Any] = {"reward_terms": terms, "nonfinite_actions": nonfinite, "diverged": diverged}
        device = self.device
        return obs.to(device), reward.to(device), terminated.to(device), truncated.to(device), info

    def problem_counts(self) -> dict[str, int]:
        """Env steps whose action had a NaN/inf entry, and episodes ended by a physics divergence."""
        return dict(self._counts)

    def close(self) -> None:
        self.physics.close()

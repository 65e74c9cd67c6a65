"""Part 3's physics limit: what the physics of the evaluation's own episodes costs on one core, alone.

The physics a MuJoCo task needs per env step is ``mj_step(model, data, nstep=frame_skip)``, then
``mj_rnePostConstraint`` where its observations read contact forces (Ant, Humanoid: ``cfrc_ext``), and per
episode one reset (``mj_resetData``, the start state, ``mj_forward``). :class:`PhysicsClock` times exactly
those calls for the episodes an evaluation visits: it wraps a mujoco-backend env with one ``MjData`` per env,
and before each step repeats every running env's step on a copy of its ``MjData`` (``mj_copyData``, whole state
and warm start included) under the clock; after each reset it repeats the reset envs' resets on the copy,
under the clock. The copies, the policy and the env's own work are outside it. This matters: a Humanoid lying
on the floor costs twice as much per step as one standing, and evaluated Humanoids rarely get to lie down.

The limit is the timed env steps per second on one core, times the cores. Two loops on two cores do not
reach twice one core (shared caches, memory bandwidth, frequency): :func:`concurrency` measures the ratio,
two concurrent single-core physics loops in two processes over twice one alone, and the report prints it
beside the limit.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import numpy as np
import torch

from neuroevo.envs import VectorEnv
from neuroevo.envs.mujoco import TASKS
from neuroevo.envs.mujoco.base import MujocoVectorEnv, import_mujoco
from neuroevo.envs.mujoco.task import POST_CONSTRAINT_FIELDS, load_model
from neuroevo.policies import Policy

PHYSICS_ENVS = 8  # members replayed side by side (on one thread) while the physics is timed
CONCURRENCY_S = 1.0  # each loop of the concurrency figure runs this long


class _DataEnv(MujocoVectorEnv):
    per_env_data = True  # the clock copies each env's MjData


class PhysicsClock(VectorEnv):
    """A mujoco-backend env of ``task`` (``num_envs`` envs, one thread) whose physics is also timed alone
    (see the module's docstring). ``seconds``: time inside the timed calls; ``env_steps``: env steps they
    took; ``resets``: resets they timed."""

    def __init__(self, env_id: str, num_envs: int):
        self.env = env = _DataEnv(TASKS[env_id], num_envs, device="cpu", num_threads=1)
        self.num_envs, self.device, self.spec_id = env.num_envs, env.device, env.spec_id
        self.max_episode_steps = env.max_episode_steps
        self._init_spaces(env.single_observation_space, env.single_action_space)
        self._mujoco = import_mujoco()
        self._copy = self._mujoco.MjData(env.model)
        self._post_constraint = not POST_CONSTRAINT_FIELDS.isdisjoint(env.task.fields)
        self._running = np.zeros(env.num_envs, dtype=bool)
        self.seconds, self.env_steps, self.resets = 0.0, 0, 0

    @property
    def frame_skip(self) -> int:
        return self.env.task.frame_skip

    def reset(self, *, seed=None, options=None):
        mask = (options or {}).get("reset_mask")
        mask = np.ones(self.num_envs, bool) if mask is None else np.asarray(torch.as_tensor(mask).cpu())
        self._running |= mask
        out = self.env.reset(seed=seed, options=options)
        mujoco, model, copy = self._mujoco, self.env.model, self._copy
        for i in np.flatnonzero(mask):
            data = self.env.datas[i]
            start = time.perf_counter()
            mujoco.mj_resetData(model, copy)
            copy.qpos[:] = data.qpos
            copy.qvel[:] = data.qvel
            mujoco.mj_forward(model, copy)
            self.seconds += time.perf_counter() - start
            self.resets += 1
        return out

    def step(self, actions):
        mujoco, model, copy, skip = self._mujoco, self.env.model, self._copy, self.frame_skip
        ctrl = torch.as_tensor(actions).detach().cpu().numpy().astype(np.float64)
        ctrl = np.where(np.isfinite(ctrl), ctrl, 0.0)  # as the env does
        for i in np.flatnonzero(self._running):
            mujoco.mj_copyData(copy, model, self.env.datas[i])
            copy.ctrl[:] = ctrl[i]
            start = time.perf_counter()
            mujoco.mj_step(model, copy, nstep=skip)
            if self._post_constraint:
                mujoco.mj_rnePostConstraint(model, copy)
            self.seconds += time.perf_counter() - start
            self.env_steps += 1
        out = self.env.step(actions)
        self._running &= ~(out[2] | out[3]).cpu().numpy()
        return out

    def close(self) -> None:
        self.env.close()


class PhysicsLimit:
    """Repeats of the physics limit of ``env_id`` over the members ``params`` [P, D] of ``policy``: member p
    replayed from its evaluation seed (``rollout.episode_seeds(seed, P, 1)``), PHYSICS_ENVS at a time on one
    thread, cycling through the population; each :meth:`measure` times at least ``min_s`` seconds of physics
    and returns env steps/s on one core."""

    def __init__(self, env_id: str, policy: Policy, params: torch.Tensor, seed: int, max_steps: int | None,
                 min_s: float):
        from neuroevo.rollout import episode_seeds

        self.policy, self.params, self.max_steps, self.min_s = policy, params, max_steps, min_s
        self.seeds = episode_seeds(seed, params.shape[0], 1)
        self.clock = PhysicsClock(env_id, min(PHYSICS_ENVS, params.shape[0]))
        self._first = 0

    def measure(self) -> float:
        from neuroevo.rollout import evaluate

        clock, popsize = self.clock, self.params.shape[0]
        clock.seconds, clock.env_steps, clock.resets = 0.0, 0, 0
        while clock.seconds < self.min_s:
            members = (self._first + torch.arange(clock.num_envs)) % popsize
            self._first += clock.num_envs
            evaluate(self.policy, self.params[members], clock, seed=self.seeds[members], max_steps=self.max_steps)
        return clock.env_steps / clock.seconds

    def close(self) -> None:
        self.clock.close()


def _physics_loop(xml: str, frame_skip: int, post_constraint: bool, seconds: float) -> float:
    """Env steps/s of a plain single-core physics loop of ``xml`` for ``seconds``: fixed smooth controls, a
    reset every 100 env steps (as short episodes do)."""
    mujoco = import_mujoco()
    model = load_model(xml)
    data = mujoco.MjData(model)
    controls = 0.3 * np.sin(np.arange(100)[:, None] * 0.1 + np.arange(model.nu)[None, :])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mujoco.mj_resetData(model, data)
        mujoco.mj_forward(model, data)
        for ctrl in controls:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=frame_skip)
            if post_constraint:
                mujoco.mj_rnePostConstraint(model, data)
        steps += len(controls)
    return steps / (time.perf_counter() - start)


def concurrency(env_id: str, processes: int, seconds: float = CONCURRENCY_S) -> dict[str, Any]:
    """The physics loop of ``env_id`` alone in one process, then in ``processes`` concurrent processes:
    their summed rate over ``processes`` times the lone one (1.0: perfect scaling)."""
    task = TASKS[env_id]
    args = (task.xml, task.frame_skip, not POST_CONSTRAINT_FIELDS.isdisjoint(task.fields), seconds)
    # fork where there is one: a child starts at once and runs only MuJoCo (no torch, no OpenMP)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = context.Pool(processes)
    try:
        pool.starmap(_physics_loop, [(*args[:3], 0.05)] * processes)  # imports and caches, outside the figure
        alone = pool.apply(_physics_loop, args)
        together = pool.starmap(_physics_loop, [args] * processes)
    finally:
        # close + join, not the context manager's terminate: a forked worker inherits the parent's SIGTERM
        # handlers (Ray's, once a driver), and one that did not exit on terminate's SIGTERM hung a test run
        pool.close()
        pool.join()
    return {"alone_env_steps_per_s": alone, "together_env_steps_per_s": sum(together),
            "ratio": sum(together) / (processes * alone)}

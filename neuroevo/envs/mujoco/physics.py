"""Where the mujoco engine keeps and steps its N simulations: two stores behind one small interface.

- :class:`BatchPhysics` (the default): MuJoCo's own ``mujoco.batch.Batch`` (MuJoCo >= 4.0). Every
  simulation's integration state is one row of one contiguous array, and a call steps the chosen rows on a
  C++ thread pool with the GIL released, then copies the derived fields the task reads into bound
  ``[N, ...]`` arrays: no Python per env per step. Its results are bit-identical to one ``MjData`` per
  simulation stepped by ``mj_step`` (MuJoCo's documentation; our gymnasium parity tests hold it to that).
- :class:`DataPhysics`: one ``MjData`` per env, stepped by ``mj_step`` on a Python thread pool (``mj_step``
  releases the GIL) and gathered field by field. The tasks whose observations read ``cfrc_ext`` (Ant,
  Humanoid) need it: gymnasium computes that field with ``mj_rnePostConstraint`` after the step, on the
  state the step left, and a batch call has no such hook (a user sensor calling it inside the step sees the
  state before the last integration and gives other forces).

Both expose ``now`` (field name -> live ``[N, ...]`` float64 array, ``qpos`` and ``qvel`` always),
``warnings`` (MuJoCo's warning counters, ``[N, mjNWARNING]``), ``datas`` (per env, an object whose
``qpos`` / ``qvel`` / ``ctrl`` are that env's writable state) and ``step(running, ctrl)`` /
``reset(indices, qpos, qvel)`` / ``close()``.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

CHUNKS_PER_THREAD = 4  # DataPhysics: envs are stepped in this many chunks per thread, taken as threads free up


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def has_batch() -> bool:
    """Whether this MuJoCo has ``mujoco.batch`` (4.0 and later; older ones step :class:`DataPhysics`)."""
    try:
        import mujoco.batch  # noqa: F401
    except ImportError:
        return False
    return True


class _Row:
    """One simulation of a :class:`BatchPhysics`: its state fields as writable rows, like an ``MjData``'s."""

    def __init__(self, batch: Any, index: int):
        self._batch, self._index = batch, index

    def __getattr__(self, name: str) -> np.ndarray:
        return self._batch.bind(name)[self._index]


class BatchPhysics:
    """N simulations as rows of one ``mujoco.batch.Batch`` on ``num_threads`` C++ threads (the caller's
    included); ``fields``: the derived ``MjData`` fields to copy out after every call."""

    def __init__(self, mujoco: Any, model: Any, num_envs: int, num_threads: int, frame_skip: int,
                 fields: tuple[str, ...]):
        from mujoco import batch

        self._mujoco, self.model, self.frame_skip = mujoco, model, frame_skip
        self.batch = batch.Batch(model, num_envs, num_threads)
        self.threads = num_threads
        self.now = {f: self.batch.bind(f) for f in dict.fromkeys(("qpos", "qvel", *fields))}
        self._qpos, self._qvel, self._ctrl = (self.batch.bind(f) for f in ("qpos", "qvel", "ctrl"))
        self.datas = [_Row(self.batch, i) for i in range(num_envs)]
        self.batch.reset()  # derived fields computed once, so that none reads as another simulation's

    @property
    def warnings(self) -> np.ndarray:
        return self.batch.warning[:, :, 1]

    def step(self, running: np.ndarray, ctrl: np.ndarray) -> None:
        self._ctrl[...] = ctrl  # a finished env's controls are overwritten by its reset
        self.batch.step(running, nstep=self.frame_skip)

    def reset(self, indices: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        # mj_resetData, the start state, then mj_forward: as gymnasium's reset
        self.batch.reset(indices, stage=self._mujoco.mjtStage.mjSTAGE_NONE)
        self._qpos[indices] = qpos[indices]
        self._qvel[indices] = qvel[indices]
        self.batch.forward(indices)

    def close(self) -> None:
        pass


class DataPhysics:
    """N ``MjData`` over ``model``, stepped in chunks on a pool of ``num_threads`` Python threads (the
    caller's included) and gathered into ``now``; ``post_constraint``: call ``mj_rnePostConstraint`` after
    every step, as gymnasium does (for tasks that read its fields)."""

    def __init__(self, mujoco: Any, model: Any, num_envs: int, num_threads: int, frame_skip: int,
                 fields: tuple[str, ...], post_constraint: bool):
        self._mujoco, self.model, self.frame_skip = mujoco, model, frame_skip
        self._post_constraint = post_constraint
        self.datas = [mujoco.MjData(model) for _ in range(num_envs)]
        self.threads = num_threads
        self._pool = ThreadPoolExecutor(num_threads - 1) if num_threads > 1 else None
        names = tuple(dict.fromkeys(("qpos", "qvel", *fields)))
        self.now = {f: np.zeros((num_envs, *getattr(self.datas[0], f).shape)) for f in names}
        self.warnings = np.zeros((num_envs, len(self.datas[0].warning.number)), dtype=np.int64)
        # Per env: its MjData, its ctrl array and (destination row, MjData array) pairs, all views made once,
        # so the stepping threads run as little Python per env as possible (it holds the GIL).
        self._slots = [
            (
                data,
                data.ctrl,
                tuple((self.now[f][i], getattr(data, f)) for f in names) + ((self.warnings[i], data.warning.number),),
            )
            for i, data in enumerate(self.datas)
        ]

    def _step_chunk(self, indices: np.ndarray, ctrl: np.ndarray) -> None:
        mujoco, model, post_constraint, frame_skip = self._mujoco, self.model, self._post_constraint, self.frame_skip
        for i in indices:
            data, data_ctrl, pairs = self._slots[i]
            data_ctrl[:] = ctrl[i]
            mujoco.mj_step(model, data, nstep=frame_skip)
            if post_constraint:
                mujoco.mj_rnePostConstraint(model, data)
            for dst, src in pairs:
                dst[...] = src

    def _reset_chunk(self, indices: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        mujoco = self._mujoco
        for i in indices:
            data, _, pairs = self._slots[i]
            mujoco.mj_resetData(self.model, data)
            data.qpos[:] = qpos[i]
            data.qvel[:] = qvel[i]
            mujoco.mj_forward(self.model, data)
            for dst, src in pairs:
                dst[...] = src

    def _map(self, fn, indices: np.ndarray, *args) -> None:
        if self._pool is None or len(indices) < 2:
            fn(indices, *args)
            return
        # Small chunks taken from a shared queue until it is empty, so that a thread whose envs step faster
        # (a fallen Humanoid costs twice a standing one) takes more of them; the calling thread works too.
        chunks = deque(np.array_split(indices, min(CHUNKS_PER_THREAD * self.threads, len(indices))))

        def work() -> None:
            while True:
                try:
                    chunk = chunks.popleft()  # atomic
                except IndexError:
                    return
                fn(chunk, *args)

        futures = [self._pool.submit(work) for _ in range(self.threads - 1)]
        work()
        for future in futures:
            future.result()

    def step(self, running: np.ndarray, ctrl: np.ndarray) -> None:
        self._map(self._step_chunk, np.flatnonzero(running), ctrl)

    def reset(self, indices: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self._map(self._reset_chunk, indices, qpos, qvel)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

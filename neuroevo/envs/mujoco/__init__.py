"""The ``mujoco`` backend: gymnasium's -v5 MuJoCo tasks, N simulations stepped on a thread pool.

A task (:mod:`~neuroevo.envs.mujoco.planar`, ``spatial``, ``classic``: what defines the env) is composed into
an engine (:class:`MujocoVectorEnv` here, :class:`~neuroevo.envs.warp.base.WarpVectorEnv` for MuJoCo Warp).
"""

from functools import partial

from neuroevo.envs.mujoco import classic, planar, spatial
from neuroevo.envs.mujoco.base import MujocoVectorEnv
from neuroevo.envs.mujoco.task import MujocoTask, import_mujoco

#: gymnasium id -> task class
TASKS: dict[str, type[MujocoTask]] = {**planar.TASKS, **spatial.TASKS, **classic.TASKS}

#: gymnasium id -> ``(num_envs, device=None, num_threads=None, dtype=float32, max_episode_steps=None)`` -> env
MUJOCO_ENVS = {env_id: partial(MujocoVectorEnv, task) for env_id, task in TASKS.items()}

__all__ = ["MUJOCO_ENVS", "TASKS", "MujocoTask", "MujocoVectorEnv", "import_mujoco"]

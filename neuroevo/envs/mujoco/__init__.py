"""The ``mujoco`` backend: gymnasium's -v5 MuJoCo tasks, N simulations stepped on a thread pool."""

from neuroevo.envs.mujoco import classic, planar, spatial
from neuroevo.envs.mujoco.base import MujocoVectorEnv, import_mujoco

#: gymnasium id -> batched task
MUJOCO_ENVS: dict[str, type[MujocoVectorEnv]] = {**planar.TASKS, **spatial.TASKS, **classic.TASKS}

__all__ = ["MUJOCO_ENVS", "MujocoVectorEnv", "import_mujoco"]

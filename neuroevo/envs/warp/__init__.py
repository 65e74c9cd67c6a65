"""The ``warp`` backend: gymnasium's -v5 MuJoCo tasks on MuJoCo Warp, N worlds stepped together on the GPU.

The tasks are the ``mujoco`` backend's own classes (:data:`neuroevo.envs.mujoco.TASKS`), each composed into the
warp engine (:class:`WarpVectorEnv`): the task code is shared, not copied, and the engine's deviations (such as
Humanoid-v5's solver, :data:`~neuroevo.envs.warp.base.SOLVERS`) live in the engine.

Importing this package does not import warp: the optional ``neuroevo[warp]`` extra (``mujoco-warp``,
``warp-lang``) is needed only when an env is made.
"""

from functools import partial

from neuroevo.envs.mujoco import TASKS
from neuroevo.envs.warp.base import INSTALL_HINT, WarpVectorEnv, import_warp

#: gymnasium id -> ``(num_envs, device=None, dtype=float32, nconmax=None, njmax=None, graph=None,
#: max_episode_steps=None)`` -> env on MuJoCo Warp
WARP_ENVS = {env_id: partial(WarpVectorEnv, task) for env_id, task in TASKS.items()}

__all__ = ["INSTALL_HINT", "WARP_ENVS", "WarpVectorEnv", "import_warp"]

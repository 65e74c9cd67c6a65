"""The ``warp`` backend: gymnasium's -v5 MuJoCo tasks on MuJoCo Warp, N worlds stepped together on the GPU.

Importing this package does not import warp: the optional ``neuroevo[warp]`` extra (``mujoco-warp``,
``warp-lang``) is needed only when an env is made.
"""

from neuroevo.envs.warp.base import INSTALL_HINT, WarpVectorEnv, import_warp
from neuroevo.envs.warp.tasks import TASKS

#: gymnasium id -> task on MuJoCo Warp
WARP_ENVS: dict[str, type[WarpVectorEnv]] = dict(TASKS)

__all__ = ["INSTALL_HINT", "WARP_ENVS", "WarpVectorEnv", "import_warp"]

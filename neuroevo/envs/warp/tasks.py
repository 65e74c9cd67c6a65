"""Gymnasium's -v5 MuJoCo tasks on MuJoCo Warp.

Each class is the ``mujoco`` backend's task (its model file, frame skip, observation, every reward term,
termination and reset noise, see :mod:`neuroevo.envs.mujoco`) over :class:`WarpVectorEnv`'s worlds: the
task code is shared, not copied. Humanoid-v5 is the one deviation: see :class:`Humanoid`.
"""

from __future__ import annotations

from neuroevo.envs.mujoco import classic, planar, spatial
from neuroevo.envs.warp.base import WarpVectorEnv


class Swimmer(planar.Swimmer, WarpVectorEnv):
    """Swimmer-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.planar.Swimmer`)."""


class Hopper(planar.Hopper, WarpVectorEnv):
    """Hopper-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.planar.Hopper`)."""


class HalfCheetah(planar.HalfCheetah, WarpVectorEnv):
    """HalfCheetah-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.planar.HalfCheetah`)."""


class Walker2d(planar.Walker2d, WarpVectorEnv):
    """Walker2d-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.planar.Walker2d`)."""


class Ant(spatial.Ant, WarpVectorEnv):
    """Ant-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.spatial.Ant`)."""


class Humanoid(spatial.Humanoid, WarpVectorEnv):
    """Humanoid-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.spatial.Humanoid`), with the Newton
    solver instead of the model file's PGS, which MuJoCo Warp does not implement ("mjSOL_PGS is
    unsupported"). Both solve the same constraint problem, to their tolerances and iteration limits (50
    here), so the dynamics agree up to the solvers' convergence, not bit for bit: a deviation from
    gymnasium's Humanoid-v5 (and from the ``mujoco`` backend), stated in the README."""

    solver = "newton"


class InvertedPendulum(classic.InvertedPendulum, WarpVectorEnv):
    """InvertedPendulum-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.classic.InvertedPendulum`)."""


class InvertedDoublePendulum(classic.InvertedDoublePendulum, WarpVectorEnv):
    """InvertedDoublePendulum-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.classic.InvertedDoublePendulum`)."""


class Reacher(classic.Reacher, WarpVectorEnv):
    """Reacher-v5 on MuJoCo Warp (task: :class:`neuroevo.envs.mujoco.classic.Reacher`)."""


#: gymnasium id -> task on MuJoCo Warp
TASKS: dict[str, type[WarpVectorEnv]] = {
    cls.spec_id: cls
    for cls in (Swimmer, Hopper, HalfCheetah, Walker2d, Ant, Humanoid, InvertedPendulum, InvertedDoublePendulum,
                Reacher)
}

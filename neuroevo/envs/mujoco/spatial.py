"""Batched 3D locomotion tasks: gymnasium's Ant-v5 and Humanoid-v5 with their -v5 defaults.

Each class is a task (:class:`~neuroevo.envs.mujoco.task.MujocoTask`) that an engine composes into a batched
env (``MujocoVectorEnv(Ant, n)`` on CPU threads, ``WarpVectorEnv(Ant, n)`` on MuJoCo Warp). Both mirror
gymnasium's step exactly (``gymnasium/envs/mujoco/ant_v5.py`` and ``humanoid_v5.py`` over ``mujoco_env.py``):
the same model file, frame skip, observation, reward terms, healthy range and reset noise, computed over the
whole batch at once from the ``MjData`` fields the engine gathers.

Shared by both (N = ``num_envs``):
    reward = forward_weight * x_velocity + healthy_reward * healthy - ctrl_cost - contact_cost,
    terminated = not healthy; x/y velocity is the displacement of a body (Ant) or of the mass center
    (Humanoid) over ``dt`` = timestep * frame_skip. ``info["reward_terms"]`` holds gymnasium's step
    ``info`` entries, each [N] (Humanoid's tendon entries [N, 2]).
    Observations start with qpos[2:] and qvel (the x-y position excluded, as by default).
"""

from __future__ import annotations

import numpy as np

from neuroevo.envs.mujoco.task import Array, Fields, MujocoTask, array_namespace, copy, normal_from_uniforms

Arrays = Fields


class _Locomotion(MujocoTask):
    """The logic Ant and Humanoid share: reset noise on qpos, the forward / healthy / control / contact
    reward with gymnasium's info entries, and the qpos[2:] + qvel head of the observation.

    A subclass sets the weights and implements ``_xy`` (the position whose displacement is the
    velocity), ``_healthy``, ``_contact_cost``, ``_qvel_noise`` and ``_extra_obs``; it may override
    ``_ctrl_cost`` and ``_extra_info``.
    """

    forward_reward_weight: float
    ctrl_cost_weight: float
    contact_cost_weight: float
    healthy_reward: float
    healthy_z_range: tuple[float, float]
    reset_noise_scale: float

    # -- per task ---------------------------------------------------------------------------------
    def _xy(self, fields: Arrays) -> Array:
        """[N, 2] position whose displacement over dt is the (x, y) velocity."""
        raise NotImplementedError

    def _healthy(self, now: Arrays) -> Array:
        """[N] bool."""
        raise NotImplementedError

    def _ctrl_cost(self, action: Array) -> Array:
        """[N] control cost (positive) of the action as given (Humanoid's ``data.ctrl`` is the same)."""
        xp = array_namespace(action)
        return self.ctrl_cost_weight * xp.sum(xp.square(action), axis=1)

    def _contact_cost(self, now: Arrays) -> Array:
        """[N] contact cost (positive)."""
        raise NotImplementedError

    def _qvel_noise(self, u: Array) -> Array:
        """[N, nv] velocity noise from the uniforms left after the qpos noise."""
        raise NotImplementedError

    def _extra_obs(self, now: Arrays) -> list[Array]:
        """[N, k] blocks appended after qpos[2:] and qvel."""
        raise NotImplementedError

    def _extra_info(self, now: Arrays) -> Arrays:
        """More of gymnasium's info entries, each [N, ...]."""
        return {}

    # -- MujocoTask's three functions ------------------------------------------------------------------
    def initial_state(self, u: Array) -> tuple[Array, Array]:
        nq = self.model.nq
        scale = self.reset_noise_scale
        # np_random.uniform(low=-scale, high=scale) = low + (high - low) * u
        qpos = self.init_qpos + (-scale + (scale - -scale) * u[:, :nq])
        qvel = self.init_qvel + self._qvel_noise(u[:, nq:])
        return qpos, qvel

    def observe(self, now: Arrays) -> Array:
        xp = array_namespace(now["qpos"])
        return xp.concatenate([now["qpos"][:, 2:], now["qvel"], *self._extra_obs(now)], axis=1)

    def reward(self, before: Arrays, now: Arrays, action: Array):
        xy_velocity = (self._xy(now) - self._xy(before)) / self.dt
        x_velocity, y_velocity = xy_velocity[:, 0], xy_velocity[:, 1]
        healthy = self._healthy(now)
        forward_reward = self.forward_reward_weight * x_velocity
        healthy_reward = healthy * self.healthy_reward
        ctrl_cost = self._ctrl_cost(action)
        contact_cost = self._contact_cost(now)
        reward = (forward_reward + healthy_reward) - (ctrl_cost + contact_cost)
        qpos = now["qpos"]
        terms = {
            "x_position": copy(qpos[:, 0]),
            "y_position": copy(qpos[:, 1]),
            **self._extra_info(now),
            "distance_from_origin": array_namespace(qpos).linalg.norm(qpos[:, 0:2], ord=2, axis=1),
            "x_velocity": x_velocity,
            "y_velocity": y_velocity,
            "reward_forward": forward_reward,
            "reward_ctrl": -ctrl_cost,
            "reward_contact": -contact_cost,
            "reward_survive": healthy_reward,
        }
        return reward, ~healthy, terms


class Ant(_Locomotion):
    """gymnasium's Ant-v5 (``gymnasium/envs/mujoco/ant_v5.py``, ``ant.xml``, frame skip 5, dt 0.05).

    Shapes: qpos [N, 15], qvel [N, 14], action [N, 8] in [-1, 1], obs [N, 105] =
    qpos[2:] (13) + qvel (14) + cfrc_ext of the 13 bodies after the world, clipped to [-1, 1] (78).

    Reward: x velocity of the torso (``data.body("torso").xpos``) + 1 while healthy
    - 0.5 * |action|^2 - 5e-4 * |clip(cfrc_ext, -1, 1)|^2 (all bodies). Healthy: qpos and qvel finite
    and 0.2 <= torso z <= 1.0. Reset: qpos = init + U(-0.1, 0.1), qvel = init + 0.1 * N(0, 1).
    """

    spec_id = "Ant-v5"
    xml = "ant.xml"
    frame_skip = 5
    max_episode_steps = 1000
    fields = ("xpos", "cfrc_ext")
    before_fields = ("xpos",)
    num_reset_uniforms = 15 + 2 * 14  # uniform qpos noise, Box-Muller normals for qvel
    obs_dim = 13 + 14 + 13 * 6

    forward_reward_weight = 1.0
    ctrl_cost_weight = 0.5
    contact_cost_weight = 5e-4
    healthy_reward = 1.0
    healthy_z_range = (0.2, 1.0)
    contact_force_range = (-1.0, 1.0)
    reset_noise_scale = 0.1
    main_body = 1  # "torso"

    def _contact_forces(self, now: Arrays) -> Array:
        low, high = self.contact_force_range
        return array_namespace(now["cfrc_ext"]).clip(now["cfrc_ext"], low, high)  # [N, nbody, 6]

    def _xy(self, fields: Arrays) -> Array:
        return fields["xpos"][:, self.main_body, :2]

    def _ctrl_cost(self, action: Array) -> Array:
        # gymnasium squares and sums Ant's float32 action in float32 (numpy keeps float32 against the
        # Python-float weight); so do we, exactly, since a float32 action survives the float64 round trip
        xp = array_namespace(action)
        cost = self.ctrl_cost_weight * xp.sum(xp.square(xp.asarray(action, dtype=xp.float32)), axis=1)
        return xp.asarray(cost, dtype=action.dtype)

    def _healthy(self, now: Arrays) -> Array:
        low, high = self.healthy_z_range
        xp = array_namespace(now["qpos"])
        finite = xp.isfinite(now["qpos"]).all(axis=1) & xp.isfinite(now["qvel"]).all(axis=1)
        z = now["qpos"][:, 2]
        return finite & (low <= z) & (z <= high)

    def _contact_cost(self, now: Arrays) -> Array:
        forces = self._contact_forces(now)
        xp = array_namespace(forces)
        return self.contact_cost_weight * xp.sum(xp.square(forces), axis=(1, 2))

    def _qvel_noise(self, u: Array) -> Array:
        return self.reset_noise_scale * normal_from_uniforms(u)

    def _extra_obs(self, now: Arrays) -> list[Array]:
        forces = self._contact_forces(now)[:, 1:]
        return [forces.reshape(len(forces), -1)]


class Humanoid(_Locomotion):
    """gymnasium's Humanoid-v5 (``gymnasium/envs/mujoco/humanoid_v5.py``, ``humanoid.xml``, frame skip 5,
    dt 0.015).

    Shapes: qpos [N, 24], qvel [N, 23], action [N, 17] in [-0.4, 0.4], obs [N, 348] = qpos[2:] (22)
    + qvel (23) + cinert[1:] (13 x 10) + cvel[1:] (13 x 6) + qfrc_actuator[6:] (17) + cfrc_ext[1:] (13 x 6),
    the world body's rows excluded.

    Reward: 1.25 * x velocity of the mass center (``body_mass``-weighted ``xipos``) + 5 while healthy
    - 0.1 * |ctrl|^2 - min(5e-7 * |cfrc_ext|^2, 10). Healthy: 1 < z < 2 (open). Reset: qpos and qvel
    = init + U(-0.01, 0.01).
    """

    spec_id = "Humanoid-v5"
    xml = "humanoid.xml"
    frame_skip = 5
    max_episode_steps = 1000
    fields = ("xipos", "cinert", "cvel", "qfrc_actuator", "cfrc_ext", "ten_length", "ten_velocity")
    before_fields = ("xipos",)
    num_reset_uniforms = 24 + 23
    obs_dim = 22 + 23 + 13 * 10 + 13 * 6 + 17 + 13 * 6

    forward_reward_weight = 1.25
    ctrl_cost_weight = 0.1
    contact_cost_weight = 5e-7
    contact_cost_range = (-np.inf, 10.0)
    healthy_reward = 5.0
    healthy_z_range = (1.0, 2.0)
    reset_noise_scale = 1e-2

    def _xy(self, fields: Arrays) -> Array:
        mass = self.constant("body_mass")
        return (array_namespace(mass).einsum("b,nbj->nj", mass, fields["xipos"]) / mass.sum())[:, 0:2]

    def _healthy(self, now: Arrays) -> Array:
        low, high = self.healthy_z_range
        z = now["qpos"][:, 2]
        return (low < z) & (z < high)

    def _contact_cost(self, now: Arrays) -> Array:
        xp = array_namespace(now["cfrc_ext"])
        cost = self.contact_cost_weight * xp.sum(xp.square(now["cfrc_ext"]), axis=(1, 2))
        return xp.clip(cost, *self.contact_cost_range)

    def _qvel_noise(self, u: Array) -> Array:
        scale = self.reset_noise_scale
        return -scale + (scale - -scale) * u

    def _extra_obs(self, now: Arrays) -> list[Array]:
        n = len(now["qpos"])
        return [
            now["cinert"][:, 1:].reshape(n, -1),
            now["cvel"][:, 1:].reshape(n, -1),
            now["qfrc_actuator"][:, 6:],
            now["cfrc_ext"][:, 1:].reshape(n, -1),
        ]

    def _extra_info(self, now: Arrays) -> Arrays:
        return {"tendon_length": copy(now["ten_length"]), "tendon_velocity": copy(now["ten_velocity"])}


#: gymnasium id -> task
TASKS: dict[str, type[MujocoTask]] = {"Ant-v5": Ant, "Humanoid-v5": Humanoid}

"""The planar MuJoCo locomotion tasks of gymnasium -v5, batched: Hopper, Walker2d, HalfCheetah, Swimmer.

Each class is a task (:class:`~neuroevo.envs.mujoco.task.MujocoTask`): what defines the env, over the whole
batch, with no physics stepping of its own; an engine composes it into a batched env
(``MujocoVectorEnv(Hopper, n)`` on CPU threads, ``WarpVectorEnv(Hopper, n)`` on MuJoCo Warp; ``make_env``
picks one). Each class mirrors one gymnasium file (``gymnasium/envs/mujoco/<task>_v5.py``) with its constructor
defaults: the model file, ``frame_skip``, the observation (``qpos`` without the root's x (Swimmer: x
and y) position, then ``qvel``, clipped to [-10, 10] for Hopper and Walker2d), every reward term with
its weight, the healthy ranges that end a Hopper / Walker2d episode (``terminate_when_unhealthy=True``;
the healthy reward is paid only while healthy, as -v5 does) and the reset noise. The time limit is
gymnasium's registered ``max_episode_steps`` (1000 for all four).

Shapes (N = ``num_envs``): ``qpos`` [N, nq], ``qvel`` [N, nv], action [N, nu], obs [N, obs_dim],
reward / terminated / every reward term [N]. The reward terms are the entries of gymnasium's step
``info`` (``reward_forward``, ``reward_ctrl``, ``reward_survive`` where present, and the position /
velocity entries such as ``x_position``, ``x_velocity``, ``z_distance_from_origin``).

Forward velocity is the root's x displacement over the step divided by ``dt`` (``timestep * frame_skip``),
and the control cost is ``ctrl_cost_weight * sum(action**2)`` on the action as given (not clipped),
as in gymnasium.
"""

from __future__ import annotations

from neuroevo.envs.mujoco.task import Array, Fields, MujocoTask, array_namespace, copy, normal_from_uniforms


def _uniform_noise(u: Array, scale: float) -> Array:
    """``np_random.uniform(-scale, scale)`` from uniforms u in [0, 1): ``low + (high - low) * u``."""
    return -scale + (2.0 * scale) * u


def _inside(x: Array, low: float, high: float) -> Array:
    """``low < x < high`` elementwise (open interval, as gymnasium's health checks; NaN is outside)."""
    return (low < x) & (x < high)


class _Planar(MujocoTask):
    """Shared code of the four planar tasks: reset noise, observation, forward reward and control cost.

    Task attributes (gymnasium's constructor defaults):
        forward_reward_weight, ctrl_cost_weight, reset_noise_scale: the weights and noise scale.
        skipped_qpos: leading ``qpos`` entries left out of the observation (the root's x, or x and y).
        velocity_clip: bound on the observed ``qvel`` (Hopper, Walker2d), or None.
        normal_qvel_noise: ``qvel`` noise is ``scale * N(0, 1)`` (HalfCheetah) instead of ``U(-scale, scale)``.

    The reset uniforms are laid out as ``[qpos noise (nq) | qvel noise (nv, or 2 * nv for normals)]``.
    """

    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float
    reset_noise_scale: float
    skipped_qpos: int = 1
    velocity_clip: float | None = None
    normal_qvel_noise: bool = False

    def initial_state(self, u: Array) -> tuple[Array, Array]:
        nq, nv = self.model.nq, self.model.nv
        qpos = self.init_qpos + _uniform_noise(u[:, :nq], self.reset_noise_scale)
        if self.normal_qvel_noise:
            qvel = self.init_qvel + self.reset_noise_scale * normal_from_uniforms(u[:, nq : nq + 2 * nv])
        else:
            qvel = self.init_qvel + _uniform_noise(u[:, nq : nq + nv], self.reset_noise_scale)
        return qpos, qvel

    def observe(self, now: Fields) -> Array:
        xp = array_namespace(now["qpos"])
        velocity = now["qvel"]
        if self.velocity_clip is not None:
            velocity = xp.clip(velocity, -self.velocity_clip, self.velocity_clip)
        return xp.concatenate([now["qpos"][:, self.skipped_qpos :], velocity], axis=1)

    def _forward_and_ctrl(
        self, before: Fields, now: Fields, action: Array
    ) -> tuple[Array, Array, Fields]:
        """(forward reward [N], control cost [N], {x_position, x_velocity}) as gymnasium's ``step``."""
        xp = array_namespace(action)
        x_position = copy(now["qpos"][:, 0])  # copies: ``now`` is overwritten by the next step
        x_velocity = (x_position - before["qpos"][:, 0]) / self.dt
        forward_reward = self.forward_reward_weight * x_velocity
        ctrl_cost = self.ctrl_cost_weight * xp.sum(xp.square(action), axis=1)
        return forward_reward, ctrl_cost, {"x_position": x_position, "x_velocity": x_velocity}

    def extra_info(self, before: Fields, now: Fields) -> Fields:
        """The task's further position / velocity entries of gymnasium's ``info`` ([N] arrays)."""
        return {}

    def reward(
        self, before: Fields, now: Fields, action: Array
    ) -> tuple[Array, Array, Fields]:
        """Forward reward minus control cost, never terminating (HalfCheetah, Swimmer)."""
        forward_reward, ctrl_cost, info = self._forward_and_ctrl(before, now, action)
        terms = {**info, **self.extra_info(before, now), "reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}
        never = array_namespace(action).zeros_like(forward_reward, dtype=bool)
        return forward_reward - ctrl_cost, never, terms


class _Legged(_Planar):
    """Hopper and Walker2d: a healthy reward while healthy, termination when not; velocities observed
    clipped to [-10, 10]; ``info`` adds ``z_distance_from_origin`` (torso height minus its initial one)."""

    healthy_reward: float = 1.0
    velocity_clip = 10.0
    reset_noise_scale = 5e-3
    ctrl_cost_weight = 1e-3

    healthy_z_range: tuple[float, float]
    healthy_angle_range: tuple[float, float]

    def is_healthy(self, now: Fields) -> Array:
        """[N] bool, gymnasium's ``is_healthy``: torso height qpos[1] and angle qpos[2] strictly inside
        their healthy ranges (Hopper adds a bound on the rest of the state)."""
        qpos = now["qpos"]
        return _inside(qpos[:, 1], *self.healthy_z_range) & _inside(qpos[:, 2], *self.healthy_angle_range)

    def extra_info(self, before: Fields, now: Fields) -> Fields:
        return {"z_distance_from_origin": now["qpos"][:, 1] - self.init_qpos[1]}

    def reward(
        self, before: Fields, now: Fields, action: Array
    ) -> tuple[Array, Array, Fields]:
        forward_reward, ctrl_cost, info = self._forward_and_ctrl(before, now, action)
        healthy = self.is_healthy(now)
        healthy_reward = healthy * self.healthy_reward
        reward = (forward_reward + healthy_reward) - ctrl_cost
        terms = {
            **info,
            **self.extra_info(before, now),
            "reward_forward": forward_reward,
            "reward_ctrl": -ctrl_cost,
            "reward_survive": healthy_reward,
        }
        return reward, ~healthy, terms


class Hopper(_Legged):
    """Gymnasium's Hopper-v5 (``gymnasium/envs/mujoco/hopper_v5.py``), batched.

    State: qpos [N, 6] (rootx, rootz, rooty, thigh, leg, foot), qvel [N, 6]; obs [N, 11] = qpos[1:] and
    qvel clipped to [-10, 10]. Reward = forward + healthy (1 while healthy) - 1e-3 * |action|^2.
    Healthy: qpos[2:] and qvel strictly inside (-100, 100), z = qpos[1] > 0.7, torso angle qpos[2]
    inside (-0.2, 0.2). Reset: qpos, qvel += U(-5e-3, 5e-3).
    """

    spec_id = "Hopper-v5"
    xml = "hopper.xml"
    frame_skip = 4
    max_episode_steps = 1000
    num_reset_uniforms = 6 + 6
    obs_dim = 11
    healthy_state_range = (-100.0, 100.0)
    healthy_z_range = (0.7, float("inf"))
    healthy_angle_range = (-0.2, 0.2)

    def is_healthy(self, now: Fields) -> Array:
        xp = array_namespace(now["qpos"])
        state = xp.concatenate([now["qpos"][:, 2:], now["qvel"]], axis=1)  # gymnasium's state_vector()[2:]
        return xp.all(_inside(state, *self.healthy_state_range), axis=1) & super().is_healthy(now)


class Walker2d(_Legged):
    """Gymnasium's Walker2d-v5 (``gymnasium/envs/mujoco/walker2d_v5.py``, model ``walker2d_v5.xml``), batched.

    State: qpos [N, 9] (rootx, rootz, rooty, then thigh, leg, foot of the right and left legs), qvel [N, 9];
    obs [N, 17] = qpos[1:] and qvel clipped to [-10, 10]. Reward = forward + healthy (1 while healthy)
    - 1e-3 * |action|^2. Healthy: z = qpos[1] inside (0.8, 2.0), torso angle qpos[2] inside (-1, 1).
    Reset: qpos, qvel += U(-5e-3, 5e-3).
    """

    spec_id = "Walker2d-v5"
    xml = "walker2d_v5.xml"
    frame_skip = 4
    max_episode_steps = 1000
    num_reset_uniforms = 9 + 9
    obs_dim = 17
    healthy_z_range = (0.8, 2.0)
    healthy_angle_range = (-1.0, 1.0)


class HalfCheetah(_Planar):
    """Gymnasium's HalfCheetah-v5 (``gymnasium/envs/mujoco/half_cheetah_v5.py``), batched.

    State: qpos [N, 9] (rootx, rootz, rooty, then thigh, shin, foot of the back and front legs), qvel [N, 9];
    obs [N, 17] = qpos[1:] and qvel (unclipped). Reward = forward - 0.1 * |action|^2; never terminates.
    Reset: qpos += U(-0.1, 0.1), qvel += 0.1 * N(0, 1).
    """

    spec_id = "HalfCheetah-v5"
    xml = "half_cheetah.xml"
    frame_skip = 5
    max_episode_steps = 1000
    num_reset_uniforms = 9 + 2 * 9
    obs_dim = 17
    ctrl_cost_weight = 0.1
    reset_noise_scale = 0.1
    normal_qvel_noise = True


class Swimmer(_Planar):
    """Gymnasium's Swimmer-v5 (``gymnasium/envs/mujoco/swimmer_v5.py``), batched.

    State: qpos [N, 5] (slider x, slider y, free-body rotation, two hinges), qvel [N, 5]; obs [N, 8] =
    qpos[2:] and qvel. Reward = x velocity - 1e-4 * |action|^2; never terminates. ``info`` adds
    ``y_position``, ``y_velocity`` and ``distance_from_origin`` (|qpos[:2]|). Reset: qpos, qvel += U(-0.1, 0.1).
    """

    spec_id = "Swimmer-v5"
    xml = "swimmer.xml"
    frame_skip = 4
    max_episode_steps = 1000
    num_reset_uniforms = 5 + 5
    obs_dim = 8
    ctrl_cost_weight = 1e-4
    reset_noise_scale = 0.1
    skipped_qpos = 2

    def extra_info(self, before: Fields, now: Fields) -> Fields:
        xy = now["qpos"][:, :2]
        return {
            "y_position": copy(xy[:, 1]),
            "distance_from_origin": array_namespace(xy).linalg.norm(xy, axis=1),
            "y_velocity": (xy[:, 1] - before["qpos"][:, 1]) / self.dt,
        }


#: gymnasium id -> task
TASKS: dict[str, type[MujocoTask]] = {
    "Hopper-v5": Hopper,
    "Walker2d-v5": Walker2d,
    "HalfCheetah-v5": HalfCheetah,
    "Swimmer-v5": Swimmer,
}

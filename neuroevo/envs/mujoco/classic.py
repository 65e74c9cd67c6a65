"""Batched gymnasium -v5 classic MuJoCo tasks: InvertedPendulum, InvertedDoublePendulum, Reacher.

Each class mirrors one gymnasium file (``gymnasium/envs/mujoco/<task>_v5.py``) with its default
arguments: model file, frame skip, reset noise, observation, every reward term (the keys of
gymnasium's step ``info``), termination and the registered ``max_episode_steps``. Each is a task
(:class:`~neuroevo.envs.mujoco.task.MujocoTask`) that an engine composes into a batched env
(``MujocoVectorEnv(Reacher, n)`` on CPU threads, ``WarpVectorEnv(Reacher, n)`` on MuJoCo Warp); everything
runs over the batch at once on the ``[N, ...]`` arrays the engine gathers.
"""

from __future__ import annotations

from neuroevo.envs.mujoco.task import Array, Fields, MujocoTask, array_namespace, normal_from_uniforms


def uniform(u: Array, low: float, high: float) -> Array:
    """``np_random.uniform(low, high)`` from uniforms u in [0, 1), any shape."""
    return low + (high - low) * u


def noisy_start(task: MujocoTask, u: Array, scale: float, normal_qvel: bool):
    """The pendulums' reset: qpos = init_qpos + U(-scale, scale) and qvel = init_qvel + U(-scale, scale)
    (``normal_qvel``: + scale * N(0, 1) instead). u [N, nq + nv] (or [N, nq + 2 nv] with normal qvel)
    -> (qpos [N, nq], qvel [N, nv])."""
    nq = task.model.nq
    qpos = task.init_qpos + uniform(u[:, :nq], -scale, scale)
    noise = normal_from_uniforms(u[:, nq:]) if normal_qvel else uniform(u[:, nq:], -1.0, 1.0)
    return qpos, task.init_qvel + scale * noise


class InvertedPendulum(MujocoTask):
    """gymnasium/envs/mujoco/inverted_pendulum_v5.py with its defaults (reset_noise_scale=0.01).

    Observation [N, 4]: qpos (cart x, pole angle), qvel. Reward 1 while healthy, else 0 (info key
    ``reward_survive``); terminates when the observation is not finite or |pole angle| > 0.2.
    Reset: qpos and qvel each init + U(-0.01, 0.01); 4 uniforms per env.
    """

    spec_id = "InvertedPendulum-v5"
    xml = "inverted_pendulum.xml"
    frame_skip = 2
    max_episode_steps = 1000
    fields = ()
    before_fields = ()
    num_reset_uniforms = 4  # nq + nv
    obs_dim = 4
    reset_noise_scale = 0.01

    def initial_state(self, u: Array) -> tuple[Array, Array]:
        return noisy_start(self, u, self.reset_noise_scale, normal_qvel=False)

    def observe(self, now: Fields) -> Array:
        return array_namespace(now["qpos"]).concatenate([now["qpos"], now["qvel"]], axis=1)

    def reward(self, before, now, action):
        obs = self.observe(now)
        xp = array_namespace(obs)
        terminated = ~xp.isfinite(obs).all(axis=1) | (xp.abs(obs[:, 1]) > 0.2)
        survive = xp.where(terminated, 0.0, 1.0)
        return survive, terminated, {"reward_survive": survive}


class InvertedDoublePendulum(MujocoTask):
    """gymnasium/envs/mujoco/inverted_double_pendulum_v5.py with its defaults (healthy_reward=10,
    reset_noise_scale=0.1).

    Observation [N, 9]: cart x, sin and cos of the two hinge angles, qvel clipped to [-10, 10], the
    cart's constraint force clipped to [-10, 10]. With (x, y) the tip site's x and z after the step:
    terminates when y <= 1; reward = reward_survive + distance_penalty + velocity_penalty where
    reward_survive = 10 while not terminated, distance_penalty = -(0.01 x^2 + (y - 2)^2) and
    velocity_penalty = -(1e-3 w1^2 + 5e-3 w2^2) from the hinges' (unclipped) angular velocities.
    Reset: qpos = init + U(-0.1, 0.1), qvel = init + 0.1 N(0, 1); 3 + 2 * 3 = 9 uniforms per env.
    """

    spec_id = "InvertedDoublePendulum-v5"
    xml = "inverted_double_pendulum.xml"
    frame_skip = 5
    max_episode_steps = 1000
    fields = ("site_xpos", "qfrc_constraint")
    before_fields = ()
    num_reset_uniforms = 9  # nq uniforms + 2 per normal of nv
    obs_dim = 9
    reset_noise_scale = 0.1
    healthy_reward = 10.0

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self._tip = self.model.site("tip").id  # gymnasium reads site_xpos[0], the only site

    def initial_state(self, u: Array) -> tuple[Array, Array]:
        return noisy_start(self, u, self.reset_noise_scale, normal_qvel=True)

    def observe(self, now: Fields) -> Array:
        qpos = now["qpos"]
        xp = array_namespace(qpos)
        return xp.concatenate(
            [
                qpos[:, :1],
                xp.sin(qpos[:, 1:]),
                xp.cos(qpos[:, 1:]),
                xp.clip(now["qvel"], -10, 10),
                xp.clip(now["qfrc_constraint"], -10, 10)[:, :1],
            ],
            axis=1,
        )

    def reward(self, before, now, action):
        tip = now["site_xpos"][:, self._tip]
        x, y = tip[:, 0], tip[:, 2]
        terminated = y <= 1
        v1, v2 = now["qvel"][:, 1], now["qvel"][:, 2]
        dist_penalty = 0.01 * x**2 + (y - 2) ** 2
        vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
        alive_bonus = self.healthy_reward * (~terminated)
        terms = {"reward_survive": alive_bonus, "distance_penalty": -dist_penalty, "velocity_penalty": -vel_penalty}
        return alive_bonus - dist_penalty - vel_penalty, terminated, terms


class Reacher(MujocoTask):
    """gymnasium/envs/mujoco/reacher_v5.py with its defaults (frame_skip=2, reward_dist_weight=1,
    reward_control_weight=1 -- the code's default, not the 0.1 its docstring states).

    Observation [N, 10]: cos and sin of the two arm angles, the target's (x, y) (qpos[2:]), the arms'
    angular velocities, (fingertip - target)[:2] from the bodies' xpos. Reward from the state AFTER
    the step (a v5 fix): reward_dist = -|fingertip - target| (3-d norm), reward_ctrl = -|action|^2.
    reward_ctrl is computed in float64; gymnasium squares and sums a float32 action in float32, so its
    value differs from ours by float32 rounding (about 1e-7).
    Never terminates; truncated after 50 steps.

    Reset: arm qpos = init + U(-0.1, 0.1), arm qvel = init + U(-0.005, 0.005), target qvel 0, goal
    uniform in the open disc |goal| < 0.2. gymnasium draws goal candidates from U(-0.2, 0.2)^2 until
    one falls inside the disc; here each env gets ``goal_candidates`` candidate pairs and takes the
    first accepted one (acceptance pi/4 each, so all rejected has probability 0.215^32 < 1e-21). If all
    are rejected anyway, the goal is the last candidate scaled by 0.5, which lies strictly inside the
    disc (|candidate| <= 0.2 sqrt(2)), so the goal is always a deterministic function of the uniforms.
    Uniforms per env: 2 (arm qpos) + 2 * goal_candidates (goal) + 2 (arm qvel) = 68.
    """

    spec_id = "Reacher-v5"
    xml = "reacher.xml"
    frame_skip = 2
    max_episode_steps = 50
    fields = ("xpos",)
    before_fields = ()
    goal_candidates = 32
    num_reset_uniforms = 2 + 2 * goal_candidates + 2
    obs_dim = 10
    goal_radius = 0.2
    reward_dist_weight = 1.0
    reward_control_weight = 1.0

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self._fingertip = self.model.body("fingertip").id
        self._target = self.model.body("target").id

    @classmethod
    def sample_goal(cls, u: Array) -> Array:
        """Goals [N, 2] uniform in the disc |goal| < 0.2 from u [N, 2 * goal_candidates] (see class doc)."""
        xp = array_namespace(u)
        r = cls.goal_radius
        candidates = uniform(u, -r, r).reshape(len(u), cls.goal_candidates, 2)
        accepted = xp.linalg.norm(candidates, axis=2) < r
        first = accepted & (xp.cumsum(accepted, axis=1) == 1)  # the first accepted candidate, one-hot
        goal = xp.sum(candidates * first[:, :, None], axis=1)  # exactly that candidate: the rest add zeros
        return xp.where(accepted.any(axis=1)[:, None], goal, 0.5 * candidates[:, -1])

    def initial_state(self, u: Array) -> tuple[Array, Array]:
        k = 2 * self.goal_candidates
        xp = array_namespace(u)
        zeros = xp.zeros_like(u[:, :2])
        qpos = self.init_qpos + xp.concatenate([uniform(u[:, :2], -0.1, 0.1), zeros], axis=1)
        qpos[:, 2:] = self.sample_goal(u[:, 2 : 2 + k])
        qvel = self.init_qvel + xp.concatenate([uniform(u[:, 2 + k :], -0.005, 0.005), zeros], axis=1)
        qvel[:, 2:] = 0.0
        return qpos, qvel

    def _fingertip_to_target(self, now: Fields) -> Array:
        """fingertip - target body positions, [N, 3]."""
        return now["xpos"][:, self._fingertip] - now["xpos"][:, self._target]

    def observe(self, now: Fields) -> Array:
        qpos = now["qpos"]
        theta = qpos[:, :2]
        vec = self._fingertip_to_target(now)
        xp = array_namespace(qpos)
        return xp.concatenate([xp.cos(theta), xp.sin(theta), qpos[:, 2:], now["qvel"][:, :2], vec[:, :2]], axis=1)

    def reward(self, before, now, action):
        xp = array_namespace(action)
        reward_dist = -xp.linalg.norm(self._fingertip_to_target(now), axis=1) * self.reward_dist_weight
        reward_ctrl = -xp.square(action).sum(axis=1) * self.reward_control_weight
        terminated = xp.zeros_like(reward_dist, dtype=bool)
        return reward_dist + reward_ctrl, terminated, {"reward_dist": reward_dist, "reward_ctrl": reward_ctrl}


#: gymnasium id -> task
TASKS: dict[str, type[MujocoTask]] = {
    "InvertedPendulum-v5": InvertedPendulum,
    "InvertedDoublePendulum-v5": InvertedDoublePendulum,
    "Reacher-v5": Reacher,
}

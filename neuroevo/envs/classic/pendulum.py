"""Torch-native batched Pendulum-v1."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import TorchVectorEnv

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
GRAVITY = 10.0  # gymnasium's default g
MASS = 1.0
LENGTH = 1.0
RESET_THETA = math.pi
RESET_THETA_DOT = 1.0
MAX_EPISODE_STEPS = 200  # gymnasium's registered time limit


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles into [-pi, pi), elementwise."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Pendulum(TorchVectorEnv):
    """Mirrors ``PendulumEnv`` in gymnasium/envs/classic_control/pendulum.py (g = 10, torque and speed
    clipped, cost on the normalized angle, never terminates).

    State: [N, 2] = [theta, theta_dot]. Obs: [N, 3] = [cos theta, sin theta, theta_dot].
    Action: [N, 1] torque in [-2, 2].
    ``max_episode_steps`` truncates episodes (None: gymnasium's registered 200).
    """

    num_reset_uniforms = 2

    def __init__(self, num_envs: int, device=None, dtype=torch.float32, max_episode_steps: int | None = None):
        limit = MAX_EPISODE_STEPS if max_episode_steps is None else max_episode_steps
        super().__init__("Pendulum-v1", num_envs, max_episode_steps=limit, device=device, dtype=dtype)
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        self._init_spaces(
            gym.spaces.Box(low=-high, high=high, dtype=np.float32),
            gym.spaces.Box(low=-MAX_TORQUE, high=MAX_TORQUE, shape=(1,), dtype=np.float32),
        )

    def initial_state(self, u: torch.Tensor) -> torch.Tensor:
        """theta uniform in [-pi, pi), theta_dot in [-1, 1): u [N, 2] -> state [N, 2]."""
        th = -RESET_THETA + (2 * RESET_THETA) * u[:, 0]
        thdot = -RESET_THETA_DOT + (2 * RESET_THETA_DOT) * u[:, 1]
        return torch.stack((th, thdot), dim=-1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor):
        """state [N, 2], action [N, 1] -> (next_state [N, 2], reward [N], terminated [N] bool)."""
        th, thdot = state.unbind(-1)
        u = action[:, 0].to(state.dtype).clamp(-MAX_TORQUE, MAX_TORQUE)
        # the cost is charged on the state before the step
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * GRAVITY / (2 * LENGTH) * torch.sin(th) + 3.0 / (MASS * LENGTH**2) * u) * DT
        newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED)
        newth = th + newthdot * DT
        next_state = torch.stack((newth, newthdot), dim=-1)
        return next_state, -costs, torch.zeros_like(th, dtype=torch.bool)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """[N, 2] -> [N, 3] = [cos theta, sin theta, theta_dot]."""
        th, thdot = state.unbind(-1)
        return torch.stack((torch.cos(th), torch.sin(th), thdot), dim=-1)

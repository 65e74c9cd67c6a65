"""Torch-native batched MountainCarContinuous-v0."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import TorchVectorEnv

MIN_ACTION = -1.0
MAX_ACTION = 1.0
MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.45
GOAL_VELOCITY = 0.0
POWER = 0.0015
HILL_GRAVITY = 0.0025  # gymnasium writes it inline as 0.0025 * cos(3 * position)
GOAL_REWARD = 100.0
ACTION_COST = 0.1
RESET_LOW = -0.6
RESET_HIGH = -0.4
MAX_EPISODE_STEPS = 999  # gymnasium's registered time limit


class MountainCarContinuous(TorchVectorEnv):
    """Mirrors ``Continuous_MountainCarEnv`` in gymnasium/envs/classic_control/continuous_mountain_car.py
    (force clipped to [-1, 1], speed and position clipped, a car stopped at the left wall, reward
    -0.1 * action^2 on the unclipped action plus 100 on reaching the goal).

    State and obs: [N, 2] = [position, velocity]. Action: [N, 1] force in [-1, 1].
    ``max_episode_steps`` truncates episodes (None: gymnasium's registered 999).
    """

    num_reset_uniforms = 1

    def __init__(self, num_envs: int, device=None, dtype=torch.float32, max_episode_steps: int | None = None):
        limit = MAX_EPISODE_STEPS if max_episode_steps is None else max_episode_steps
        super().__init__(
            "MountainCarContinuous-v0", num_envs, max_episode_steps=limit, device=device, dtype=dtype
        )
        self._init_spaces(
            gym.spaces.Box(
                low=np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32),
                high=np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32),
                dtype=np.float32,
            ),
            gym.spaces.Box(low=MIN_ACTION, high=MAX_ACTION, shape=(1,), dtype=np.float32),
        )

    def initial_state(self, u: torch.Tensor) -> torch.Tensor:
        """position uniform in [-0.6, -0.4), velocity 0: u [N, 1] -> state [N, 2]."""
        position = RESET_LOW + (RESET_HIGH - RESET_LOW) * u[:, 0]
        return torch.stack((position, torch.zeros_like(position)), dim=-1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor):
        """state [N, 2], action [N, 1] -> (next_state [N, 2], reward [N], terminated [N] bool)."""
        position, velocity = state.unbind(-1)
        a = action[:, 0].to(state.dtype)
        force = a.clamp(MIN_ACTION, MAX_ACTION)
        velocity = velocity + force * POWER - HILL_GRAVITY * torch.cos(3 * position)
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
        position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        # the left wall is inelastic: a car pinned against it stops
        at_wall = (position <= MIN_POSITION) & (velocity < 0)
        velocity = torch.where(at_wall, torch.zeros_like(velocity), velocity)
        terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
        # gymnasium charges the action as given, before the clip
        reward = torch.where(terminated, GOAL_REWARD, 0.0).to(state.dtype) - a**2 * ACTION_COST
        return torch.stack((position, velocity), dim=-1), reward, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The state itself: [N, 2] -> [N, 2]."""
        return state

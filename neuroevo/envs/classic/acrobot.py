"""Torch-native batched Acrobot-v1."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import TorchVectorEnv

DT = 0.2  # one RK4 step of this length per env step
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
GRAVITY = 9.8
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
RESET_BOUND = 0.1
MAX_EPISODE_STEPS = 500  # gymnasium's registered time limit


def wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Shift ``x`` by whole periods (high - low) into [low, high], elementwise.

    Gymnasium subtracts one period at a time in a loop; subtracting ``k`` periods at once gives the
    same number when k = 1 (the only case one RK4 step can produce) and stays loop-free on a GPU.
    """
    period = high - low
    above = torch.ceil((x - high) / period).clamp(min=0)
    below = torch.ceil((low - x) / period).clamp(min=0)
    return x - period * above + period * below


class Acrobot(TorchVectorEnv):
    """Mirrors ``AcrobotEnv`` in gymnasium/envs/classic_control/acrobot.py (the "book" dynamics, one RK4
    step of dt = 0.2, angles wrapped to [-pi, pi], speeds bounded, no torque noise, reward -1 per step
    and 0 on the terminating one).

    State: [N, 4] = [theta1, theta2, dtheta1, dtheta2].
    Obs: [N, 6] = [cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2].
    Action: [N] int64 in {0, 1, 2}, the torque -1, 0, +1 on the joint between the links.
    ``max_episode_steps`` truncates episodes (None: gymnasium's registered 500).
    """

    num_reset_uniforms = 4

    def __init__(self, num_envs: int, device=None, dtype=torch.float32, max_episode_steps: int | None = None):
        limit = MAX_EPISODE_STEPS if max_episode_steps is None else max_episode_steps
        super().__init__("Acrobot-v1", num_envs, max_episode_steps=limit, device=device, dtype=dtype)
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        self._init_spaces(gym.spaces.Box(low=-high, high=high, dtype=np.float32), gym.spaces.Discrete(3))

    def initial_state(self, u: torch.Tensor) -> torch.Tensor:
        """Each of the 4 entries uniform in [-0.1, 0.1): u [N, 4] -> state [N, 4]."""
        return -RESET_BOUND + (2 * RESET_BOUND) * u

    @staticmethod
    def _dsdt(s: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """Time derivative of the state, [N, 4] -> [N, 4], for the torque [N] held fixed."""
        m1, m2, l1 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1
        lc1, lc2 = LINK_COM_POS_1, LINK_COM_POS_2
        i1 = i2 = LINK_MOI
        g = GRAVITY
        theta1, theta2, dtheta1, dtheta2 = s.unbind(-1)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + i1 + i2
        d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + i2
        phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
            + phi2
        )
        # the book / Java form, which keeps the dtheta1^2 term the NIPS paper drops
        ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2) / (
            m2 * lc2**2 + i2 - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=-1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor):
        """state [N, 4], action [N] -> (next_state [N, 4], reward [N], terminated [N] bool)."""
        torque = action.to(state.dtype) - 1.0  # {0, 1, 2} -> {-1, 0, +1}
        half = DT / 2.0
        k1 = self._dsdt(state, torque)
        k2 = self._dsdt(state + half * k1, torque)
        k3 = self._dsdt(state + half * k2, torque)
        k4 = self._dsdt(state + DT * k3, torque)
        ns = state + DT / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        th1 = wrap(ns[:, 0], -math.pi, math.pi)
        th2 = wrap(ns[:, 1], -math.pi, math.pi)
        dth1 = ns[:, 2].clamp(-MAX_VEL_1, MAX_VEL_1)
        dth2 = ns[:, 3].clamp(-MAX_VEL_2, MAX_VEL_2)
        next_state = torch.stack((th1, th2, dth1, dth2), dim=-1)
        # the tip is more than one link length above the pivot
        terminated = -torch.cos(th1) - torch.cos(th2 + th1) > 1.0
        reward = torch.where(terminated, 0.0, -1.0).to(state.dtype)
        return next_state, reward, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """[N, 4] -> [N, 6] = [cos th1, sin th1, cos th2, sin th2, dth1, dth2]."""
        th1, th2, dth1, dth2 = state.unbind(-1)
        return torch.stack(
            (torch.cos(th1), torch.sin(th1), torch.cos(th2), torch.sin(th2), dth1, dth2), dim=-1
        )

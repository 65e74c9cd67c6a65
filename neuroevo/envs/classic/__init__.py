"""Torch-native, batched versions of gymnasium's classic-control tasks."""

from __future__ import annotations

from collections.abc import Callable

from neuroevo.envs.base import TorchVectorEnv
from neuroevo.envs.classic.acrobot import Acrobot
from neuroevo.envs.classic.cartpole import CartPole
from neuroevo.envs.classic.mountain_car import MountainCarContinuous
from neuroevo.envs.classic.pendulum import Pendulum

TORCH_ENVS: dict[str, Callable[..., TorchVectorEnv]] = {
    "CartPole-v1": CartPole,
    "Pendulum-v1": Pendulum,
    "Acrobot-v1": Acrobot,
    "MountainCarContinuous-v0": MountainCarContinuous,
}

__all__ = ["TORCH_ENVS", "Acrobot", "CartPole", "MountainCarContinuous", "Pendulum"]

"""Baselines from other libraries, trained under neuroevo's budgets and logged in its metrics format.

``neuroevo.baselines.ppo`` (Stable-Baselines3's PPO, the ``baselines`` extra) is imported on use;
this package itself imports only the config.
"""

from neuroevo.baselines.config import PPOConfig

__all__ = ["PPOConfig"]

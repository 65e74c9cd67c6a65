"""Baselines from other libraries, trained under neuroevo's budgets and logged in its metrics format.

Stable-Baselines3's PPO, SAC and TD3 (the ``baselines`` extra; ``neuroevo.baselines.sb3`` runs them, resumably)
are imported on use; this package itself imports only the configs.
"""

from neuroevo.baselines.config import BaselineConfig, PPOConfig, SACConfig, TD3Config

#: the baselines ``neuroevo compare`` runs, each a task-card table of its own
BASELINES: tuple[str, ...] = ("ppo", "sac", "td3")

__all__ = ["BASELINES", "BaselineConfig", "PPOConfig", "SACConfig", "TD3Config"]

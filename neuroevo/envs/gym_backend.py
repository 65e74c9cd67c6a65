"""Any registered gymnasium env through ``gymnasium.vector``, with torch tensors at the boundary.

This is also the reference backend: a checkpoint trained on a torch-native env is evaluated here on
gymnasium's own implementation.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import VectorEnv, seeds_tensor


class GymVectorEnv(VectorEnv):
    """``num_envs`` copies of a gymnasium env in a ``SyncVectorEnv`` (or ``AsyncVectorEnv``).

    Autoreset is gymnasium's default (``NEXT_STEP``): evaluators mask finished episodes, so what a
    finished env returns afterwards is never used.
    """

    def __init__(self, env_id: str, num_envs: int, device=None, vectorization_mode: str = "sync", **kwargs):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        try:
            self.env = gym.make_vec(
                env_id, num_envs=num_envs, vectorization_mode=vectorization_mode, **kwargs
            )
        except gym.error.Error as err:
            raise ValueError(f"unknown env id {env_id!r}: {err}") from None
        self.spec_id = env_id
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        spec = gym.spec(env_id)
        self.max_episode_steps = kwargs.get("max_episode_steps", spec.max_episode_steps)
        self.metadata = dict(self.env.metadata)
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        if not isinstance(obs_space, gym.spaces.Box) or not isinstance(
            action_space, (gym.spaces.Box, gym.spaces.Discrete)
        ):
            self.env.close()
            raise ValueError(
                f"{env_id}: neuroevo needs a Box observation space and a Box or Discrete action space, "
                f"got {obs_space} and {action_space}"
            )
        self._init_spaces(obs_space, action_space)

    def _tensor(self, array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=dtype).to(self.device)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        return self._tensor(obs).reshape(self.num_envs, -1)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            seed = seeds_tensor(seed, self.num_envs).tolist()
        obs, info = self.env.reset(seed=seed, options=options)
        return self._obs(obs), info

    def step(self, actions):
        actions = torch.as_tensor(actions)
        self.check_actions(actions)
        actions = actions.detach().cpu().numpy()
        if isinstance(self.single_action_space, gym.spaces.Box):
            actions = actions.astype(self.single_action_space.dtype, copy=False)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return (
            self._obs(obs),
            self._tensor(reward),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool),
            info,
        )

    def close(self):
        self.env.close()

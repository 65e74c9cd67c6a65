"""Any registered gymnasium env through ``gymnasium.vector``, with torch tensors at the boundary.

This is also the reference backend: a checkpoint trained on a torch-native env is evaluated here on
gymnasium's own implementation.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.atari import Preprocessing, gymnasium_reference, is_atari, take_preprocessing
from neuroevo.envs.base import EpisodeState, VectorEnv, as_mask, seeds_tensor


def make_gymnasium_env(env_id: str, *, entry_point: str | None = None, max_episode_steps: int | None = None,
                       **kwargs: Any) -> gym.Env:
    """One gymnasium env, as each copy of the gymnasium backend is made: a user's ``"package:Id"`` or
    ``entry_point`` resolved (:func:`~neuroevo.envs.user.resolve_env_id`), an ``ALE/...`` id with the atari
    backend's preprocessing as gymnasium's wrappers and its time limit in agent steps, ``kwargs`` the env's own
    arguments (e.g. ``render_mode``). What a deployed policy is played on (``neuroevo eval``, videos); a one-line
    ``ValueError`` for an id gymnasium cannot make."""
    from neuroevo.envs.user import resolve_env_id

    env_id = resolve_env_id(env_id, entry_point)
    try:
        if not is_atari(env_id):
            if max_episode_steps is not None:
                kwargs["max_episode_steps"] = int(max_episode_steps)
            return gym.make(env_id, **kwargs)
        atari = take_preprocessing(kwargs)
        made, (preprocess,) = gymnasium_reference(env_id, **atari)
        env = preprocess(gym.make(env_id, **made, **kwargs))
        steps = max_episode_steps or Preprocessing(**atari).default_max_steps
        return gym.wrappers.TimeLimit(env, max_episode_steps=int(steps))
    except gym.error.Error as err:
        raise ValueError(f"cannot make {env_id!r}: {err}") from None


class GymVectorEnv(VectorEnv):
    """``num_envs`` copies of a gymnasium env in a ``SyncVectorEnv`` (or ``AsyncVectorEnv``), keeping
    neuroevo's contract (:mod:`neuroevo.envs.base`): finished episodes are sticky, resets go by mask.

    Gymnasium's ``AutoresetMode.DISABLED`` would say what we mean, but gymnasium 1.4 asserts when a
    finished sub-env is stepped, and a batch is stepped whole. So gymnasium's vector env runs in its
    default ``NEXT_STEP`` mode, and :class:`EpisodeState` masks its outputs: a finished env returns its
    last observation, reward 0 and its sticky flags; the reset gymnasium performs on the next step, and
    whatever that sub-env does afterwards, is never returned nor counted (the ``info`` entries of
    finished envs are masked out through gymnasium's ``"_<key>"`` masks).

    Seeds: ``reset(seed=s)`` with an int resets env i from ``s + i`` (gymnasium's own convention, so a
    seeded first episode is gymnasium's); a later ``reset()`` without a seed starts episode k of env i
    from a seed derived from (its seed, k), because gymnasium's own stream would also advance at every
    hidden autoreset, making the start state depend on how long the other envs ran.

    Args:
        env_id: a registered gymnasium id.
        num_envs: N.
        device: where the returned tensors live (gymnasium computes on the CPU in numpy).
        vectorization_mode: ``"sync"`` or ``"async"`` (gymnasium's).
        max_episode_steps: the time limit (None: the registered one).
        kwargs: the env's own constructor arguments; for ``ALE/...`` ids the atari backend's preprocessing
            settings (:data:`neuroevo.envs.atari.ATARI_SETTINGS`), applied as gymnasium's wrappers.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        device=None,
        vectorization_mode: str = "sync",
        max_episode_steps: int | None = None,
        **kwargs,
    ):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        wrappers, atari = None, {}
        if is_atari(env_id):  # the atari backend's preprocessing, as gymnasium's wrappers; the time limit in agent
            atari = take_preprocessing(kwargs)  # steps is EpisodeState's
            made, wrappers = gymnasium_reference(env_id, **atari)
            kwargs.update(made)
        elif max_episode_steps is not None:
            kwargs["max_episode_steps"] = int(max_episode_steps)  # gym.make's own argument: its TimeLimit
        try:
            self.env = gym.make_vec(
                env_id, num_envs=num_envs, vectorization_mode=vectorization_mode, wrappers=wrappers, **kwargs
            )
        except gym.error.Error as err:
            raise ValueError(f"unknown env id {env_id!r}: {err}") from None
        self.spec_id = env_id
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        if max_episode_steps is None and wrappers is not None:  # ale-py's cap of 108,000 frames, in agent steps
            max_episode_steps = Preprocessing(**atari).default_max_steps
        elif max_episode_steps is None:
            max_episode_steps = gym.spec(env_id).max_episode_steps
        self.max_episode_steps = max_episode_steps
        self.metadata = {**self.env.metadata, "autoreset_mode": gym.vector.AutoresetMode.DISABLED}
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
        self._init_seeds("cpu")
        # ``self.episodes`` (made at the first reset) lives on the CPU, where gymnasium's arrays are; outputs
        # move to ``device``

    def _tensor(self, array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=dtype)

    def reset(self, *, seed=None, options=None):
        options = dict(options or {})
        mask = as_mask(options.pop("reset_mask", None), self.num_envs, "cpu")
        if seed is not None:
            self._seeds = seeds_tensor(seed, self.num_envs)
            self._resets = torch.zeros_like(self._resets)
        elif self._reset_once:
            self._resets = self._resets + 1
        self._reset_once = True
        if self.episodes is None:
            mask = None  # gymnasium's envs must all be reset once before any step
            self.episodes = EpisodeState(self.num_envs, self.obs_dim, self.max_episode_steps)
        if mask is not None and not bool(mask.any()):
            return self.episodes.obs.to(self.device), {}  # gymnasium refuses an empty mask
        if mask is not None:
            options["reset_mask"] = mask.numpy()
        # gymnasium's vector envs take a seed per env, though VectorEnv.reset's annotation says int | None
        obs, info = self.env.reset(seed=self.episode_seeds(), options=options or None)  # type: ignore[arg-type]
        obs = self.episodes.reset(mask, self._tensor(obs).reshape(self.num_envs, -1))
        return obs.to(self.device), info

    def step(self, actions):
        if self.episodes is None:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions)
        self.check_actions(actions)
        actions = actions.detach().cpu().numpy()
        if isinstance(self.single_action_space, gym.spaces.Box):
            actions = actions.astype(self.single_action_space.dtype, copy=False)
        running = self.episodes.running
        obs, reward, terminated, truncated, info = self.env.step(actions)
        obs, reward, terminated, truncated = self.episodes.step(
            self._tensor(obs).reshape(self.num_envs, -1),
            self._tensor(reward),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool),  # gymnasium's TimeLimit, or an env that truncates itself
        )
        running_np = running.numpy()
        for key, value in info.items():
            if key.startswith("_") and isinstance(value, np.ndarray) and value.dtype == np.bool_:
                info[key] = value & running_np
        return (
            obs.to(self.device),
            reward.to(self.device),
            terminated.to(self.device),
            truncated.to(self.device),
            info,
        )

    def close(self):
        self.env.close()

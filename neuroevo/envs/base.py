"""Batched environments with torch tensors at the boundary, and the one contract every backend keeps.

Every backend returns a :class:`VectorEnv`: the API of ``gymnasium.vector.VectorEnv`` (``num_envs``,
``single_observation_space`` beside the batched ``observation_space``, ``reset(seed=, options=)``,
5-tuple ``step``), with observations, rewards and flags as torch tensors on ``env.device``.

Shapes (N = ``num_envs``):
    obs: [N, obs_dim] float (uint8 for pixels: the observation space's dtype, the image flattened; the
    space keeps its shape), reward: [N] float, terminated / truncated: [N] bool,
    actions: [N] int64 for ``Discrete`` spaces, [N, act_dim] float for ``Box`` spaces.

The contract (every backend; :func:`neuroevo.envs.check_env` holds an env to it):

- **Finished episodes are sticky.** After env i's episode terminates or truncates, ``step`` returns its last
  observation, reward 0 and the same ``terminated`` / ``truncated`` flags, whatever action it is given, until
  env i is reset. No backend starts a new episode by itself (no autoreset): a member's fitness can never
  include a second episode. :class:`EpisodeState` is the one implementation of this bookkeeping.
- **Reset by mask.** ``reset(options={"reset_mask": mask [N] bool})`` starts new episodes in the masked envs
  only; the others keep their episodes, observations and flags. ``reset()`` without a mask resets every env.
- **Seeds.** ``reset(seed=s)`` with an int seeds env i with ``s + i``; a list or tensor [N] gives each env its
  seed. An env's start state is a function of its seed (and of how many resets followed it), never of its
  slot, its thread or the other envs. ``reset(seed=None)`` continues each env's stream.
- **Bad actions.** An action batch of the wrong shape or kind is a one-line ``ValueError``; a non-finite entry
  of a ``Box`` action never raises and never touches the other envs.
- ``step`` before the first ``reset`` is a ``RuntimeError``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

from neuroevo.seeding import derive_seed, hash_uniform

#: what ``reset(seed=...)`` takes: an int (env i gets seed + i), N per-env seeds, or None
Seed = int | list[int] | torch.Tensor | None
#: a torch device or its name (None: the default)
Device = torch.device | str | None


class VectorEnv:
    """Base of every batched env. Subclasses set the spaces and implement ``reset`` and ``step``."""

    num_envs: int
    device: torch.device
    spec_id: str
    single_observation_space: gym.Space
    single_action_space: gym.Space
    metadata: dict[str, Any] = {}
    #: CPU threads the env steps on besides the caller's (the mujoco backend's pool), 0 for none
    physics_threads: int = 0

    #: the episode bookkeeping of the backends built on :class:`EpisodeState` (None until it is made)
    episodes: EpisodeState | None = None
    _max_episode_steps: int | None = None

    @property
    def max_episode_steps(self) -> int | None:
        """The time limit that truncates an episode (None: none); setting it shortens the running episodes too."""
        return self._max_episode_steps

    @max_episode_steps.setter
    def max_episode_steps(self, steps: int | None) -> None:
        self._max_episode_steps = steps
        if self.episodes is not None:
            self.episodes.max_episode_steps = steps

    @property
    def elapsed(self) -> torch.Tensor:
        """Steps taken in each env's current episode, [N] int64."""
        if self.episodes is None:
            raise RuntimeError(f"{self.spec_id}: call reset() before reading elapsed")
        return self.episodes.elapsed

    def problem_counts(self) -> dict[str, int]:
        """Cumulative counts of bad input the env absorbed (e.g. ``nonfinite_actions``, ``diverged``)
        since it was made; the trainer logs their increase per generation."""
        return {}

    def _init_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.single_observation_space.shape or ()))

    def reset(self, *, seed: Seed = None, options: dict | None = None) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        raise NotImplementedError

    # -- seeding shared by the backends that draw their own start states --------------------------
    def _init_seeds(self, device: torch.device | str) -> None:
        """Unseeded envs draw their seeds from torch's global RNG; episode k of env i starts from the
        counter-based stream (seed_i, k)."""
        seed0 = int(torch.randint(0, 2**62, (1,)).item())
        self._seeds = seeds_tensor(seed0, self.num_envs).to(device)
        self._resets = torch.zeros(self.num_envs, dtype=torch.int64, device=device)
        self._reset_once = False

    def episode_seeds(self) -> list[int]:
        """Per env, the seed of its next episode, for backends that seed an external env at each reset: its own
        seed for the first episode after seeding, then one derived from (seed, reset count), never the external
        env's own stream (which may advance at hidden autoresets, making a start state depend on the others)."""
        return [
            s if k == 0 else derive_seed(s, k)
            for s, k in zip(self._seeds.tolist(), self._resets.tolist(), strict=True)
        ]

    def _reset_bookkeeping(self, seed: Seed, options: dict | None) -> tuple[Any, Any]:
        """Reseed (``seed`` given) or advance the reset counters; returns the ``reset_mask`` and
        ``state`` options (or None), refusing any other option."""
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        state = options.pop("state", None)
        if options:
            raise ValueError(f"{self.spec_id}: unknown reset options {sorted(options)}")
        if seed is not None:
            self._seeds = seeds_tensor(seed, self.num_envs).to(self._seeds.device)
            self._resets = torch.zeros_like(self._resets)
        elif self._reset_once:
            self._resets = self._resets + 1
        self._reset_once = True
        return mask, state

    def check_actions(self, actions: torch.Tensor) -> None:
        """Raise a one-line ``ValueError`` if ``actions`` does not fit the batched action space."""
        space = self.single_action_space
        expected: tuple[int, ...]
        if isinstance(space, gym.spaces.Discrete):
            expected = (self.num_envs,)
            if actions.is_floating_point():
                raise ValueError(f"{self.spec_id}: discrete actions must be integers, got {actions.dtype}")
        else:
            expected = (self.num_envs, *(space.shape or ()))
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"{self.spec_id}: actions of shape {tuple(actions.shape)} do not fit the action space "
                f"{space} for {self.num_envs} envs; expected shape {expected}"
            )

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec_id!r}, num_envs={self.num_envs}, device={self.device})"


class EpisodeState:
    """The episode bookkeeping every batched backend shares: which envs are running, their sticky
    ``terminated`` / ``truncated`` flags, their step counts and last observations (see the module's contract).

    A backend computes its physics, observation, reward and termination for the whole batch, then hands them to
    :meth:`step`, which masks the envs whose episodes had already ended; :meth:`reset` starts the masked envs.
    Everything lives on ``device`` (the CPU for backends whose physics runs there); every update is out of
    place, so the tensors a step returned are never changed by a later one.

    Args:
        num_envs: N.
        obs_dim: observation size.
        max_episode_steps: the time limit that truncates an episode (None: none).
        device, dtype: where the state lives and the float dtype of the observations and rewards it returns.
        obs_dtype: the observations' dtype when it is not ``dtype`` (``torch.uint8`` for pixels).
    """

    def __init__(self, num_envs: int, obs_dim: int, max_episode_steps: int | None, device: Device = None,
                 dtype: torch.dtype = torch.float32, obs_dtype: torch.dtype | None = None):
        device = torch.device(device if device is not None else "cpu")
        self.max_episode_steps = max_episode_steps
        self.dtype = dtype
        self.obs_dtype = obs_dtype if obs_dtype is not None else dtype
        self.running = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.terminated = torch.zeros_like(self.running)
        self.truncated = torch.zeros_like(self.running)
        self.elapsed = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.obs = torch.zeros(num_envs, obs_dim, dtype=self.obs_dtype, device=device)

    def reset(self, mask: torch.Tensor | None, obs: torch.Tensor) -> torch.Tensor:
        """Start new episodes in the envs of ``mask`` [N] bool (None: all) from observations ``obs`` [N, obs_dim]
        (rows outside the mask are ignored); returns every env's observation [N, obs_dim]."""
        obs = obs.to(device=self.obs.device, dtype=self.obs_dtype)
        if mask is None:
            mask = torch.ones_like(self.running)
        self.obs = torch.where(mask[:, None], obs, self.obs)
        self.running = self.running | mask
        self.terminated = self.terminated & ~mask
        self.truncated = self.truncated & ~mask
        self.elapsed = torch.where(mask, 0, self.elapsed)
        return self.obs

    def step(
        self,
        obs: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor | None = None,
        diverged: torch.Tensor | None = None,
        obs_held: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Record one step of every env: ``obs`` [N, obs_dim], ``reward`` [N], ``terminated`` [N] bool as computed
        for every env; optionally ``truncated`` [N] bool (an env that truncates itself, besides the time limit
        counted here) and ``diverged`` [N] bool (a physics divergence: reward NaN and the episode terminates, so
        the member ranks last). Envs whose episodes had ended keep their last observation, reward 0 and their
        flags. ``obs_held``: ``obs`` is a fresh tensor in ``obs_dtype`` whose rows of ended envs the backend already
        set to their last observation, so it is kept as it is (the atari backend does that in numpy: a masked copy
        of a whole batch of pixels here is a multi-threaded torch op, whose spinning OpenMP workers then take the
        cores the emulators need). Returns (obs, reward, terminated, truncated): obs in ``obs_dtype``, reward in
        ``dtype``."""
        running = self.running
        reward = torch.where(running, reward, 0.0)
        terminated = running & terminated
        if diverged is not None:
            reward = torch.where(diverged & running, torch.nan, reward)
            terminated = terminated | (running & diverged)
        self.elapsed = self.elapsed + running
        self.terminated = self.terminated | terminated
        if truncated is not None:
            self.truncated = self.truncated | (running & truncated)
        if self.max_episode_steps is not None:
            self.truncated = self.truncated | (running & (self.elapsed >= self.max_episode_steps))
        self.obs = obs if obs_held else torch.where(running[:, None], obs.to(self.obs_dtype), self.obs)
        self.running = running & ~(self.terminated | self.truncated)
        return self.obs, reward.to(self.dtype), self.terminated, self.truncated


def as_mask(mask: Any, num_envs: int, device: torch.device | str) -> torch.Tensor | None:
    """A ``reset_mask`` option (any array-like of N bools, or None) as a [N] bool tensor on ``device``."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.numel() != num_envs or mask.dtype != torch.bool:
        raise ValueError(f"reset_mask must be {num_envs} bools, got {mask.dtype} of shape {tuple(mask.shape)}")
    return mask.to(device).reshape(num_envs)


def seeds_tensor(seed: int | list[int] | torch.Tensor, num_envs: int) -> torch.Tensor:
    """Per-env int64 seeds, [N]: an int seeds env i with ``seed + i`` (gymnasium's convention)."""
    if isinstance(seed, (int, np.integer)):
        return int(seed) + torch.arange(num_envs, dtype=torch.int64)
    seeds = torch.as_tensor(seed, dtype=torch.int64).reshape(-1).cpu()
    if seeds.numel() != num_envs:
        raise ValueError(f"reset(seed=...) got {seeds.numel()} seeds for {num_envs} envs")
    return seeds


class TorchVectorEnv(VectorEnv):
    """A torch-native batched env: physical state [N, state_dim] on ``device``, stepped in one call.

    Subclasses are thin: they define the spaces and three pure functions over batched tensors,
    which a single env (N = 1) and the batched env share:

    - ``initial_state(u)``: start states from uniforms ``u`` [N, k] in [0, 1).
    - ``dynamics(state, action)`` -> ``(next_state, reward, terminated)``.
    - ``observe(state)`` -> obs [N, obs_dim].

    Finished episodes are sticky (the module's contract, through :class:`EpisodeState`): the state of a
    finished env is held, and its outputs are its last observation, reward 0 and its flags.

    ``reset(options={"state": tensor [N, state_dim]})`` sets the physical state directly (used by
    tests that step gymnasium's env and ours from the same start state).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    #: number of uniforms ``initial_state`` consumes per env
    num_reset_uniforms: int = 0

    def __init__(self, spec_id: str, num_envs: int, max_episode_steps: int, device: Device = None,
                 dtype: torch.dtype = torch.float32):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self.spec_id = spec_id
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        self.dtype = dtype
        self.max_episode_steps = max_episode_steps
        self.state: torch.Tensor | None = None
        self._init_seeds(self.device)

    # -- the three pure functions each env defines --------------------------------------------------
    def initial_state(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- gymnasium's vector API --------------------------------------------------------------------
    def reset(self, *, seed: Seed = None, options: dict | None = None) -> tuple[torch.Tensor, dict]:
        mask, given = self._reset_bookkeeping(seed, options)
        if given is not None:
            new_state = torch.as_tensor(given, dtype=self.dtype, device=self.device).reshape(self.num_envs, -1)
        else:
            u = hash_uniform(self._seeds, self._resets, self.num_reset_uniforms, dtype=self.dtype)
            new_state = self.initial_state(u)
        mask = as_mask(mask, self.num_envs, self.device)
        if self.episodes is None:  # made at the first reset: the spaces are set after this class's __init__
            self.episodes = EpisodeState(self.num_envs, self.obs_dim, self.max_episode_steps, self.device, self.dtype)
        if mask is not None and self.state is not None:
            self.state = torch.where(mask[:, None], new_state, self.state)
        else:
            self.state = new_state
        return self.episodes.reset(mask, self.observe(self.state)), {}

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        if self.state is None or self.episodes is None:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions, device=self.device)
        self.check_actions(actions)
        running = self.episodes.running
        next_state, reward, terminated = self.dynamics(self.state, actions)
        self.state = torch.where(running[:, None], next_state, self.state)  # finished envs are held
        obs, reward, terminated, truncated = self.episodes.step(self.observe(self.state), reward, terminated)
        return obs, reward, terminated, truncated, {}

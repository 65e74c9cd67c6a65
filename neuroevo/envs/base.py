"""Batched environments with torch tensors at the boundary.

Every backend returns a :class:`VectorEnv`: the API of ``gymnasium.vector.VectorEnv`` (``num_envs``,
``single_observation_space`` beside the batched ``observation_space``, ``reset(seed=, options=)``,
5-tuple ``step``), with observations, rewards and flags as torch tensors on ``env.device``.

Shapes (N = ``num_envs``):
    obs: [N, obs_dim] float, reward: [N] float, terminated / truncated: [N] bool,
    actions: [N] int64 for ``Discrete`` spaces, [N, act_dim] float for ``Box`` spaces.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

from neuroevo.seeding import hash_uniform


class VectorEnv:
    """Base of every batched env. Subclasses set the spaces and implement ``reset`` and ``step``."""

    num_envs: int
    device: torch.device
    spec_id: str
    max_episode_steps: int | None
    single_observation_space: gym.Space
    single_action_space: gym.Space
    metadata: dict[str, Any] = {}
    #: CPU threads the env steps on besides the caller's (the mujoco backend's pool), 0 for none
    physics_threads: int = 0

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
        return int(np.prod(self.single_observation_space.shape))

    def reset(
        self, *, seed: int | list[int] | torch.Tensor | None = None, options: dict | None = None
    ) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        raise NotImplementedError

    # -- seeding shared by the backends that draw their own start states --------------------------
    def _init_seeds(self, device) -> None:
        """Unseeded envs draw their seeds from torch's global RNG; episode k of env i starts from the
        counter-based stream (seed_i, k)."""
        seed0 = int(torch.randint(0, 2**62, (1,)).item())
        self._seeds = seeds_tensor(seed0, self.num_envs).to(device)
        self._resets = torch.zeros(self.num_envs, dtype=torch.int64, device=device)
        self._reset_once = False

    def _reset_bookkeeping(self, seed, options: dict | None):
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
        if isinstance(space, gym.spaces.Discrete):
            expected = (self.num_envs,)
            if actions.is_floating_point():
                raise ValueError(f"{self.spec_id}: discrete actions must be integers, got {actions.dtype}")
        else:
            expected = (self.num_envs, *space.shape)
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"{self.spec_id}: actions of shape {tuple(actions.shape)} do not fit the action space "
                f"{space} for {self.num_envs} envs; expected shape {expected}"
            )

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec_id!r}, num_envs={self.num_envs}, device={self.device})"


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

    Autoreset follows gymnasium's ``AutoresetMode.DISABLED``: an env that terminated or truncated
    keeps stepping (its outputs are meaningless) until ``reset(options={"reset_mask": mask})``
    resets it. Evaluators mask finished episodes instead, which costs nothing on a GPU.

    ``reset(options={"state": tensor [N, state_dim]})`` sets the physical state directly (used by
    tests that step gymnasium's env and ours from the same start state).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    #: number of uniforms ``initial_state`` consumes per env
    num_reset_uniforms: int = 0

    def __init__(self, spec_id: str, num_envs: int, max_episode_steps: int, device=None, dtype=torch.float32):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self.spec_id = spec_id
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        self.dtype = dtype
        self.max_episode_steps = max_episode_steps
        self.state: torch.Tensor | None = None
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._init_seeds(self.device)

    # -- the three pure functions each env defines --------------------------------------------------
    def initial_state(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dynamics(self, state: torch.Tensor, action: torch.Tensor):
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- gymnasium's vector API --------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        mask, given = self._reset_bookkeeping(seed, options)
        if given is not None:
            new_state = torch.as_tensor(given, dtype=self.dtype, device=self.device).reshape(self.num_envs, -1)
        else:
            u = hash_uniform(self._seeds, self._resets, self.num_reset_uniforms, dtype=self.dtype)
            new_state = self.initial_state(u)
        if mask is not None and self.state is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device).reshape(self.num_envs)
            self.state = torch.where(mask[:, None], new_state, self.state)
            self.elapsed = torch.where(mask, torch.zeros_like(self.elapsed), self.elapsed)
        else:
            self.state = new_state
            self.elapsed = torch.zeros_like(self.elapsed)
        return self.observe(self.state), {}

    def step(self, actions):
        if self.state is None:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions, device=self.device)
        self.check_actions(actions)
        self.state, reward, terminated = self.dynamics(self.state, actions)
        self.elapsed = self.elapsed + 1
        truncated = self.elapsed >= self.max_episode_steps
        return self.observe(self.state), reward, terminated, truncated, {}

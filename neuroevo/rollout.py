"""Population evaluation in this process: every member's episodes in lock-step batches.

The env holds N = P x E copies: E episodes of each of the P members run side by side, member p on env
slots [p*E, (p+1)*E). One step is one batched policy forward for the whole population and one batched
env step. A finished episode stays in the batch under a mask, and its rewards stop counting. Once at most
half of the forward's members still play, the forward drops the others (their parameters are gathered
once): episode lengths spread widely on some tasks (Atari games from 200 to 5,000 steps), and a forward
whose cost is its members' weights (a conv policy's dense layer reads 16 MB per member per step) would
otherwise spend most of a round on finished members. The env still steps every slot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import VectorEnv
from neuroevo.policies import ObsNormalizer, Policy, check_fits
from neuroevo.policies.head import apply_head, box_bounds
from neuroevo.policies.lowrank import LowRankParams, Params
from neuroevo.policies.normalizer import standardize

# How often (in steps) the loop asks which members still play: each ask is a host sync.
SYNC_EVERY = 8
# The forward drops its finished members once at most this fraction of them still play.
COMPACT_AT = 0.5


@dataclass
class Evaluation:
    """What one population evaluation gives back (all small: no parameter vectors).

    returns: [P] mean episode return per member; episode_returns / episode_lengths: [P, episodes];
    env_steps: env steps taken while episodes were running (the budget counter);
    obs_stats: (count, mean, m2) of the observations seen, for ``ObsNormalizer.merge``, or None;
    nonfinite_episodes: episodes whose return is NaN or infinite.
    """

    returns: torch.Tensor
    episode_returns: torch.Tensor
    episode_lengths: torch.Tensor
    env_steps: int
    obs_stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    nonfinite_episodes: int


def episode_seeds(seed: int, popsize: int, episodes: int) -> torch.Tensor:
    """Default episode seeds [P, episodes]: member p's episode j starts from seed + p * episodes + j."""
    return seed + torch.arange(popsize * episodes, dtype=torch.int64).reshape(popsize, episodes)


@dataclass(frozen=True)
class EvalSettings:
    """How a population's episodes run: what every evaluator (local or Ray) takes beside the members.

    episodes: episodes per member (its fitness is their mean return); max_steps: cut episodes short (None:
    the env's time limit); seed: an int (see :func:`episode_seeds`) or a tensor [P, episodes] of per-episode
    seeds (None: a random int, drawn by :meth:`fixed`): a member's fitness depends on its parameters and its
    seeds only, never on its slot in the batch or the worker that ran it; normalizer: maps observations before
    the policy (frozen during the call); collect_obs_stats: summarize the observations of running episodes
    for ``ObsNormalizer.merge``; compile: run the step through ``torch.compile``; reward_shift: subtracted
    from every step's reward (ARS's alive-bonus removal; training only).
    """

    episodes: int = 1
    max_steps: int | None = None
    seed: int | torch.Tensor | None = None
    normalizer: ObsNormalizer | None = None
    collect_obs_stats: bool = False
    compile: bool = False
    reward_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes must be positive, got {self.episodes}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")

    def fixed(self) -> EvalSettings:
        """These settings with a seed: a random int where there was none."""
        if self.seed is not None:
            return self
        return dataclasses.replace(self, seed=int(torch.randint(0, 2**31, (1,)).item()))

    def seeds(self, popsize: int) -> torch.Tensor:
        """The episode seeds [P, episodes] (int64, CPU); a one-line error for a seed tensor of another shape."""
        seed = self.fixed().seed
        if isinstance(seed, (int, np.integer)):
            return episode_seeds(int(seed), popsize, self.episodes)
        seeds = torch.as_tensor(seed, dtype=torch.int64).cpu()
        if tuple(seeds.shape) != (popsize, self.episodes):
            raise ValueError(
                f"seed tensor must be [P, episodes] = [{popsize}, {self.episodes}], got {tuple(seeds.shape)}"
            )
        return seeds


class ObsSums(NamedTuple):
    """The observation count, sum and sum of squares of each env slot, float64: [P, slots, 1], [P, slots, obs_dim]
    and [P, slots, obs_dim]. Summed per slot through the episode and over the slots once at its end, so a step
    adds three elementwise ops, not three reductions (on a small batch the op count is the step's cost)."""

    counts: torch.Tensor
    total: torch.Tensor
    squares: torch.Tensor

    @staticmethod
    def zeros(popsize: int, slots: int, obs_dim: int, device: torch.device) -> ObsSums:
        counts = torch.zeros(popsize, slots, 1, dtype=torch.float64, device=device)
        total = torch.zeros(popsize, slots, obs_dim, dtype=torch.float64, device=device)
        return ObsSums(counts, total, torch.zeros_like(total))

    def stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(count, mean, m2) over every slot, for ``ObsNormalizer.merge``."""
        count, total, squares = self.counts.sum(), self.total.sum((0, 1)), self.squares.sum((0, 1))
        mean = total / count.clamp_min(1)
        return count, mean, (squares - count * mean * mean).clamp_min(0.0)


class _Frozen(NamedTuple):
    """What stays constant through one evaluation (plain tensors and numbers, so ``torch.compile``
    guards on their values, not on Python closures)."""

    obs_mean: torch.Tensor | None
    obs_std: torch.Tensor | None
    obs_clip: float
    action_start: torch.Tensor | None
    action_low: torch.Tensor | None
    action_high: torch.Tensor | None
    action_shape: tuple[int, ...]
    reward_shift: float


def _frozen(env: VectorEnv, normalizer: ObsNormalizer | None, dtype: torch.dtype, reward_shift: float) -> _Frozen:
    device, space = env.device, env.single_action_space
    mean = std = low = high = None
    if normalizer is not None:
        mean, std = (t.to(device) for t in normalizer.mean_std(dtype))
    if isinstance(space, gym.spaces.Box):
        low, high = box_bounds(space, device=device, dtype=dtype)
    start = torch.tensor(int(space.start), device=device) if isinstance(space, gym.spaces.Discrete) else None
    clip = normalizer.clip if normalizer is not None else 0.0
    return _Frozen(mean, std, clip, start, low, high, (env.num_envs, *(space.shape or ())), float(reward_shift))


def _step(
    policy: Policy,
    env: VectorEnv,
    frozen: _Frozen,
    params: Params,
    rows: torch.Tensor | None,
    obs: torch.Tensor,
    alive: torch.Tensor,
    ret: torch.Tensor,
    length: torch.Tensor,
    obs_sums: ObsSums | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, ObsSums | None]:
    """One lock-step of every running episode: normalize, batched forward, action head, env step, masks.

    params: the members in ``rows`` (every member where rows is None); the others' outputs are zeros, a valid
    action that their finished episodes ignore. alive, ret, length: [P, slots]; obs_sums: the observation sums
    of each env slot (updated in place) or None. Returns the updated (obs, alive, ret, length, obs_sums).
    """
    popsize, slots = alive.shape
    obs = obs.reshape(popsize, slots, -1)
    if obs.is_floating_point() or obs_sums is not None or frozen.obs_mean is not None:
        obs = obs.to(params.dtype)  # pixels (uint8) stay uint8 until the policy's first layer
    if obs_sums is not None:
        # A diverged env's NaN/inf observation must not poison the running statistics for good.
        counted = (alive & (obs * 0 == 0).all(-1))[..., None]
        seen = torch.where(counted, obs, 0.0).to(torch.float64)
        obs_sums.counts.add_(counted)
        obs_sums.total.add_(seen)
        obs_sums.squares.addcmul_(seen, seen)
    if frozen.obs_mean is not None and frozen.obs_std is not None:
        obs = standardize(obs, frozen.obs_mean, frozen.obs_std, frozen.obs_clip)
    if rows is None:
        raw = policy(params, obs)
    else:
        playing = policy(params, obs.index_select(0, rows))
        raw = playing.new_zeros((popsize, *playing.shape[1:])).index_copy_(0, rows, playing)
    # A non-finite policy output (NaN/inf parameters, or NaN observations passed through) ends the episode with a
    # NaN return: its member ranks last instead of acting on whatever the action head makes of NaN.
    # (x * 0 == 0 is torch.isfinite in two ops instead of four: x * 0 is NaN for NaN and for +-inf.)
    finite = (raw * 0 == 0).reshape(popsize, slots, -1).all(-1)
    broken = alive & ~finite
    actions = apply_head(raw, frozen.action_start, frozen.action_low, frozen.action_high).reshape(frozen.action_shape)
    obs, reward, terminated, truncated, _ = env.step(actions)
    reward = reward.reshape(popsize, slots)
    if frozen.reward_shift:
        reward = reward - frozen.reward_shift
    ret = ret + torch.where(alive, reward, 0.0)
    ret = torch.where(broken, torch.nan, ret)
    length = length + alive
    alive = alive & finite & ~(terminated | truncated).reshape(popsize, slots)
    return obs, alive, ret, length, obs_sums


@functools.cache
def _compiled_step() -> Callable[..., Any]:
    # One compiled function for every env and policy (dynamo guards on their identity); it fuses the
    # step's elementwise work into a few kernels instead of dozens of launches.
    return torch.compile(_step, dynamic=False)


def _check(policy: Policy, params: Params, env: VectorEnv, max_steps: int | None) -> tuple[int, int, int]:
    """Validate the inputs of :func:`rollout`; returns (P, slots per member, horizon)."""
    if params.ndim != 2:
        raise ValueError(f"params must be [P, D], got shape {tuple(params.shape)}")
    popsize = params.shape[0]
    if env.num_envs % popsize:
        raise ValueError(f"env has {env.num_envs} envs, not a multiple of the population size {popsize}")
    check_fits(policy, env.single_action_space, env.single_observation_space, name=env.spec_id)
    horizon = max_steps if max_steps is not None else env.max_episode_steps
    if horizon is None:
        raise ValueError(f"{env.spec_id} has no time limit: pass max_steps")
    return popsize, env.num_envs // popsize, horizon


def _run_round(
    step: Callable[..., Any],
    policy: Policy,
    params: Params,
    env: VectorEnv,
    frozen: _Frozen,
    seeds: torch.Tensor,
    horizon: int,
    obs_sums: ObsSums | None,
    compact: bool,
) -> tuple[torch.Tensor, torch.Tensor, ObsSums | None]:
    """One batch of episodes, seeds [P, slots]; returns (returns, lengths, obs_sums), [P, slots] each.
    ``compact``: let the forward drop finished members (eager steps only: a compiled step would recompile for
    every new count)."""
    popsize, slots = seeds.shape
    device = env.device
    obs, _ = env.reset(seed=seeds.reshape(-1))
    alive = torch.ones(popsize, slots, dtype=torch.bool, device=device)
    ret = torch.zeros(popsize, slots, device=device)
    length = torch.zeros(popsize, slots, dtype=torch.int64, device=device)
    rows, forward_params = None, params  # the members the forward runs (None: all of them)
    for t in range(horizon):
        obs, alive, ret, length, obs_sums = step(
            policy, env, frozen, forward_params, rows, obs, alive, ret, length, obs_sums
        )
        if (t + 1) % SYNC_EVERY == 0:
            playing = alive.any(1)
            count = int(playing.sum())
            if count == 0:
                break
            if compact and count <= COMPACT_AT * (popsize if rows is None else len(rows)):
                rows = playing.nonzero().squeeze(1)
                forward_params = _select(params, rows)
    return ret, length, obs_sums


def _select(params: Params, rows: torch.Tensor) -> Params:
    """The members ``rows`` of ``params``."""
    return params.select(rows) if isinstance(params, LowRankParams) else params.index_select(0, rows)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU ops on ``n`` threads (at least 1) for a while, then as many as before."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def evaluate(
    policy: Policy,
    params: Params,
    env: VectorEnv,
    episodes: int = 1,
    max_steps: int | None = None,
    *,
    normalizer: ObsNormalizer | None = None,
    seed: int | torch.Tensor | None = None,
    collect_obs_stats: bool = False,
    compile: bool = False,
    reward_shift: float = 0.0,
) -> Evaluation:
    """Run ``episodes`` episodes of each member of ``params`` [P, D] on ``env`` and average returns.

    ``env.num_envs`` must be a multiple of P: with E = num_envs / P slots per member, the episodes run
    in ceil(episodes / E) rounds. The other arguments are :class:`EvalSettings`' fields (seeds,
    normalizer, observation statistics, ``torch.compile``, reward shift): this is :func:`rollout` with
    them spelled out.
    """
    settings = EvalSettings(episodes, max_steps, seed, normalizer, collect_obs_stats, compile, reward_shift)
    return rollout(policy, params, env, settings)


@torch.no_grad()
def rollout(policy: Policy, params: Params, env: VectorEnv, settings: EvalSettings) -> Evaluation:
    """Every member of ``params`` [P, D] plays ``settings.episodes`` episodes on ``env`` (``num_envs`` a
    multiple of P), all in lock-step; returns their :class:`Evaluation`. ``compile`` pays seconds on the
    first call; it pays back where the per-step work is many small operations (a GPU, small CPU batches)."""
    popsize, slots, horizon = _check(policy, params, env, settings.max_steps)
    episodes, normalizer = settings.episodes, settings.normalizer
    seeds = settings.seeds(popsize)
    rounds = math.ceil(episodes / slots)
    # Slots past the last requested episode still run (a full batch) but are never counted.
    seeds = torch.cat([seeds, seeds[:, -1:].expand(popsize, rounds * slots - episodes)], 1)

    device = env.device
    params = params.to(device)
    frozen = _frozen(env, normalizer, params.dtype, settings.reward_shift)
    step = _compiled_step() if settings.compile else _step
    obs_sums = ObsSums.zeros(popsize, slots, env.obs_dim, device) if settings.collect_obs_stats else None
    round_returns: list[torch.Tensor] = []
    round_lengths: list[torch.Tensor] = []
    # Beside an env that steps on its own CPU threads (the mujoco backend), torch's OpenMP workers spin-wait
    # between ops and take the cores the physics needs: Humanoid-v5, 64 envs on 2 cores went from 5.4k to 9.0k
    # env steps/s on one torch thread. A policy whose forward is most of the step (a conv net beside the atari
    # backend's emulators, which sleep while it runs) keeps every thread.
    physics_on_cpu = env.physics_threads > 1 and params.device.type == "cpu" and not policy.threaded_forward
    with torch_threads(1) if physics_on_cpu else contextlib.nullcontext():
        for r in range(rounds):
            round_seeds = seeds[:, r * slots : (r + 1) * slots]
            ret, length, obs_sums = _run_round(
                step, policy, params, env, frozen, round_seeds, horizon, obs_sums, compact=not settings.compile
            )
            round_returns.append(ret)
            round_lengths.append(length)
    ep_returns, ep_lengths = torch.cat(round_returns, 1), torch.cat(round_lengths, 1)

    # Padding slots took real steps and saw real observations: they count as env steps and stats.
    steps_taken = ep_lengths.sum()
    obs_stats = obs_sums.stats() if obs_sums is not None else None
    ep_returns, ep_lengths = ep_returns[:, :episodes], ep_lengths[:, :episodes]
    return Evaluation(
        returns=ep_returns.mean(1),
        episode_returns=ep_returns,
        episode_lengths=ep_lengths,
        env_steps=int(steps_taken),
        obs_stats=obs_stats,
        nonfinite_episodes=int((~torch.isfinite(ep_returns)).sum()),
    )

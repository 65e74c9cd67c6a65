"""Population evaluators: one interface, evaluated here (:class:`LocalEvaluator`) or on Ray workers
(:class:`~neuroevo.distributed.RayEvaluator`).

The trainer holds one evaluator and, every generation, hands it the optimizer's population and the
:class:`~neuroevo.rollout.EvalSettings`; it never asks which kind it holds. Every evaluator gives the same
:class:`~neuroevo.rollout.Evaluation` for the same members and seeds: a member's fitness is a function of its
parameters and its episode seeds only.

A population is either the optimizer's compact :class:`~neuroevo.algorithms.Population` (base rows plus
noise offsets: what travels to Ray workers) or a params tensor [P, D].
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from neuroevo.algorithms import NoiseTable, Optimizer, Population
from neuroevo.envs import VectorEnv, make_env
from neuroevo.policies import ObsNormalizer, Policy
from neuroevo.policies.lowrank import LowRankParams, Params
from neuroevo.rollout import EvalSettings, Evaluation, rollout

#: default number of shards per generation on Ray (more than workers: free workers take the next shard)
DEFAULT_SHARDS = 32


def shard_bounds(popsize: int, shard_size: int | None = None) -> list[tuple[int, int]]:
    """Member ranges [(start, stop)] covering [0, popsize): ``shard_size`` each (default
    ``ceil(popsize / DEFAULT_SHARDS)``), the last one shorter."""
    size = shard_size or math.ceil(popsize / DEFAULT_SHARDS)
    return [(start, min(start + size, popsize)) for start in range(0, popsize, size)]


def combine(results: list[Evaluation], obs_dim: int) -> Evaluation:
    """Shard evaluations, in shard order, as one :class:`Evaluation` (on the CPU); observation
    statistics merge with :meth:`ObsNormalizer.merge`, in the same order every time."""
    obs_stats = None
    if results[0].obs_stats is not None:
        merged = ObsNormalizer(obs_dim)
        for result in results:
            if result.obs_stats is not None:
                merged.merge(result.obs_stats)
        obs_stats = merged.stats()
    return Evaluation(
        returns=torch.cat([r.returns for r in results]),
        episode_returns=torch.cat([r.episode_returns for r in results]),
        episode_lengths=torch.cat([r.episode_lengths for r in results]),
        env_steps=sum(r.env_steps for r in results),
        obs_stats=obs_stats,
        nonfinite_episodes=sum(r.nonfinite_episodes for r in results),
    )

@dataclass(frozen=True)
class EnvFactory:
    """How to make the batched envs of one task, wherever they are made (here, or on a Ray worker):
    ``factory(num_envs)`` is ``make_env(env_id, num_envs, device, backend, num_threads, entry_point=entry_point,
    **kwargs)``: a user's env (``"package:EnvId"`` or an entry point, with its constructor ``kwargs``) is
    imported and registered wherever the factory runs.

    device: None is :func:`~neuroevo.envs.make_env`'s default here, and the GPU Ray assigned (else the CPU)
    on a Ray worker.
    """

    env_id: str
    backend: str = "auto"
    device: str | torch.device | None = None
    num_threads: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    entry_point: str | None = None

    def __call__(self, num_envs: int) -> VectorEnv:
        return make_env(self.env_id, num_envs, self.device, self.backend, self.num_threads,
                        entry_point=self.entry_point, **self.kwargs)


class Evaluator(abc.ABC):
    """The interface every evaluator implements.

    After each :meth:`evaluate`, :attr:`last_metrics` holds the evaluator's own metrics of that call (e.g.
    ``dist/...`` on Ray; none locally), which the trainer logs beside the optimizer's.
    """

    last_metrics: dict[str, float]

    @abc.abstractmethod
    def evaluate(
        self, population: Population | torch.Tensor, settings: EvalSettings, optimizer: Optimizer | None = None
    ) -> Evaluation:
        """Every member's ``settings.episodes`` episodes; returns their :class:`Evaluation`.

        population: ``optimizer.ask_population()`` or params [P, D]. optimizer: the optimizer that asked for
        ``population``, if any (its noise table rebuilds the members here; Ray workers keep a replica of it).
        """

    def problem_counts(self) -> dict[str, int]:
        """Cumulative counts of bad input the envs absorbed (``VectorEnv.problem_counts``, summed)."""
        return {}

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the evaluator holds (envs, workers)."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEvaluator(Evaluator):
    """Evaluates in this process with :func:`~neuroevo.rollout.rollout`: one batched env of P x episodes
    envs per population size (made on first use and kept), one batched policy forward per step.

    Args:
        policy: the policy architecture.
        envs: ``envs(num_envs)`` makes the batched envs (an :class:`EnvFactory`, or any such callable).
        shard_size: evaluate this many members at a time (None: the whole population at once). For populations
            whose [P, D] parameters, or P x episodes envs, do not fit in memory (e.g. the Deep Neuroevolution
            GA's 1,000 Atari networks): each shard's rows are built from the compact population when its turn
            comes, with the members' own episode seeds, so the fitness values are the same as in one piece.
    """

    def __init__(self, policy: Policy, envs: Callable[[int], VectorEnv], shard_size: int | None = None):
        if shard_size is not None and shard_size <= 0:
            raise ValueError(f"shard_size must be positive (or None: the whole population at once), got {shard_size}")
        self.policy = policy
        self.envs = envs
        self.shard_size = shard_size
        self.last_metrics: dict[str, float] = {}
        self._envs: dict[int, VectorEnv] = {}
        self._noise: dict[tuple[int, int, torch.device], NoiseTable] = {}

    def env(self, num_envs: int) -> VectorEnv:
        """The batched env of ``num_envs`` envs (made once)."""
        if num_envs not in self._envs:
            self._envs[num_envs] = self.envs(num_envs)
        return self._envs[num_envs]

    def members(
        self, population: Population | Params, optimizer: Optimizer | None = None, start: int = 0,
        stop: int | None = None,
    ) -> Params:
        """Rows [start, stop) of ``population`` as params [n, D], bit-identical to the optimizer's ``ask()``
        (EGGROLL's low-rank populations: as :class:`~neuroevo.policies.lowrank.LowRankParams`, which the policy
        forward takes without building [n, D]): built with the optimizer's noise table, or a table of the
        population's (made once per device)."""
        if isinstance(population, torch.Tensor):
            return population[start:stop]
        if isinstance(population, LowRankParams):
            return population.rows(start, len(population) if stop is None else stop)
        noise = getattr(optimizer, "noise", None)  # a NoiseTableOptimizer's table, already on its device
        key = (population.noise_seed, population.noise_size)
        if noise is None or (noise.seed, noise.size) != key:
            device = population.bases.device
            if (*key, device) not in self._noise:
                self._noise[(*key, device)] = NoiseTable(*key, device=device)
            noise = self._noise[(*key, device)]
        return population.members(noise, start, stop)

    def evaluate(
        self, population: Population | Params, settings: EvalSettings, optimizer: Optimizer | None = None
    ) -> Evaluation:
        popsize = len(population)
        if self.shard_size is None or self.shard_size >= popsize:
            params = self.members(population, optimizer)
            return rollout(self.policy, params, self.env(popsize * settings.episodes), settings)
        seeds = settings.seeds(popsize)
        results = []
        for start, stop in shard_bounds(popsize, self.shard_size):
            params = self.members(population, optimizer, start, stop)
            shard = dataclasses.replace(settings, seed=seeds[start:stop])
            results.append(rollout(self.policy, params, self.env((stop - start) * settings.episodes), shard))
        return combine(results, self.policy.obs_dim)

    def problem_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for env in self._envs.values():
            for name, count in env.problem_counts().items():
                counts[name] = counts.get(name, 0) + count
        return counts

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def make_evaluator(
    policy: Policy,
    envs: EnvFactory,
    workers: int = 0,
    *,
    address: str | None = None,
    include_dashboard: bool = False,
    shard_size: int | None = None,
) -> Evaluator:
    """The evaluator a run asks for: a :class:`LocalEvaluator` for ``workers=0`` (evaluating ``shard_size``
    members at a time, or all at once), else a :class:`~neuroevo.distributed.RayEvaluator` on that many Ray
    workers, with its ``address``, ``include_dashboard`` and ``shard_size``."""
    if workers < 0:
        raise ValueError(f"workers must be 0 (evaluate in this process) or more, got {workers}")
    if workers == 0:
        return LocalEvaluator(policy, envs, shard_size)
    from neuroevo.distributed import RayEvaluator  # Ray is imported only when workers are asked for

    return RayEvaluator(policy, envs, workers, address=address, include_dashboard=include_dashboard,
                        shard_size=shard_size)


__all__ = ["DEFAULT_SHARDS", "EnvFactory", "EvalSettings", "Evaluation", "Evaluator", "LocalEvaluator", "combine",
           "make_evaluator", "shard_bounds"]

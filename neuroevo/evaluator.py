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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from neuroevo.algorithms import NoiseTable, Optimizer, Population
from neuroevo.envs import VectorEnv, make_env
from neuroevo.policies import Policy
from neuroevo.policies.lowrank import LowRankParams, Params
from neuroevo.rollout import EvalSettings, Evaluation, rollout


@dataclass(frozen=True)
class EnvFactory:
    """How to make the batched envs of one task, wherever they are made (here, or on a Ray worker):
    ``factory(num_envs)`` is ``make_env(env_id, num_envs, device, backend, num_threads, **kwargs)``.

    device: None is :func:`~neuroevo.envs.make_env`'s default here, and the GPU Ray assigned (else the CPU)
    on a Ray worker.
    """

    env_id: str
    backend: str = "auto"
    device: str | torch.device | None = None
    num_threads: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, num_envs: int) -> VectorEnv:
        return make_env(self.env_id, num_envs, self.device, self.backend, self.num_threads, **self.kwargs)


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
    """

    def __init__(self, policy: Policy, envs: Callable[[int], VectorEnv]):
        self.policy = policy
        self.envs = envs
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
        params = self.members(population, optimizer)
        return rollout(self.policy, params, self.env(params.shape[0] * settings.episodes), settings)

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
    """The evaluator a run asks for: a :class:`LocalEvaluator` for ``workers=0``, else a
    :class:`~neuroevo.distributed.RayEvaluator` on that many Ray workers, with its ``address``,
    ``include_dashboard`` and ``shard_size`` (unused here)."""
    if workers < 0:
        raise ValueError(f"workers must be 0 (evaluate in this process) or more, got {workers}")
    if workers == 0:
        return LocalEvaluator(policy, envs)
    from neuroevo.distributed import RayEvaluator  # Ray is imported only when workers are asked for

    return RayEvaluator(policy, envs, workers, address=address, include_dashboard=include_dashboard,
                        shard_size=shard_size)


__all__ = ["EnvFactory", "EvalSettings", "Evaluation", "Evaluator", "LocalEvaluator", "make_evaluator"]

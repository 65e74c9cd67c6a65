"""A Ray worker: a :class:`~neuroevo.evaluator.LocalEvaluator` (its own batched envs, policy and device)
evaluating shards of the population, and what the driver sends it.

Per generation a worker is sent one :class:`GenerationSpec` (with its first shard) and then
:class:`Shard` ranges. The spec names the population in one of three ways (its ``source``):

- :class:`Replay` (every optimizer under the trainer): the fitness of the generations since the worker's
  last one. The worker keeps a replica of the optimizer, replays ``tell`` on it and asks it for the
  next population: the bytes do not depend on the parameter count. A digest of the population the
  driver asked for guards the replica; a worker whose replica disagrees answers "out of sync".
- :class:`Sync`: the optimizer's class and whole state, for a new worker or one out of sync (O(D) once).
- :class:`Ship`: the compact population itself (bases [B, D] once per worker per generation, then
  ranges), for a population that comes without its optimizer.

The replica rebuilds a compact population (noise-table optimizers) or params [P, D] (the others) alike. Params
that come without their optimizer travel instead as the rows of each shard (``Shard.rows``).

Specs, shards and results cross the wire as bytes the sender pickled (:func:`pack`): what the driver counts as
``dist/bytes_sent`` and ``dist/bytes_received`` is what was sent, serialized once.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

import torch

from neuroevo.algorithms import Optimizer, Population
from neuroevo.algorithms.population import tensor_digest
from neuroevo.envs import resolve_device
from neuroevo.evaluator import EnvFactory, LocalEvaluator
from neuroevo.policies import ObsNormalizer, Policy
from neuroevo.rollout import EvalSettings, Evaluation, torch_threads


@dataclass
class Ship:
    """The population itself: bases [B, D], offsets and signs [P]."""

    population: Population


@dataclass
class Replay:
    """Advance the replica optimizer from generation ``first`` with ``tell(f)`` for each of ``fitness``
    ([P] float32 each), then ask it; the population must have ``digest``."""

    first: int
    fitness: list[torch.Tensor]
    digest: str


@dataclass
class Sync:
    """Rebuild the replica: an ``optimizer_class`` (pickled by reference where it is importable) loaded with
    ``state`` (``Optimizer.state_dict()``, on the CPU)."""

    optimizer_class: type[Optimizer]
    state: dict[str, Any]
    digest: str


@dataclass
class GenerationSpec:
    """What a worker needs once per generation; all of it but ``source`` is O(P) or O(obs_dim).

    settings: the generation's :class:`~neuroevo.rollout.EvalSettings` with its seed fixed (an int or
    [P, episodes] int64) and without the normalizer, which travels as its state (``ObsNormalizer.state_dict()``
    or None); threads: the driver's torch threads, which the replica runs its updates on (so that its float
    reductions split as the driver's do).
    """

    call: int
    popsize: int
    settings: EvalSettings
    normalizer: dict[str, torch.Tensor] | None
    threads: int
    source: Ship | Replay | Sync | None


@dataclass
class Shard:
    """Members [start, stop) of generation ``call``; ``rows`` [stop - start, D] only for a raw params tensor."""

    call: int
    start: int
    stop: int
    rows: torch.Tensor | None = None


@dataclass
class ShardResult:
    """One shard's :class:`~neuroevo.rollout.Evaluation` (None: the worker was out of sync and the
    shard must be sent again with a :class:`Sync`), the bad input its env absorbed, and the wall and
    CPU seconds (all its threads) the worker spent on it."""

    evaluation: Evaluation | None
    problems: dict[str, int]
    seconds: float
    cpu_seconds: float


def population_digest(population: Population | torch.Tensor) -> str:
    """A 128-bit hash of everything that defines the population's rows (a compact population, or params)."""
    if isinstance(population, torch.Tensor):
        return tensor_digest(population, extra=repr((str(population.dtype), tuple(population.shape))))
    scale = [] if population.scale is None else [population.scale]
    scalars = (population.sigma, population.noise_seed, population.noise_size, tuple(population.bases.shape),
               getattr(population, "rank", None), getattr(population, "layout", None))
    return tensor_digest(population.bases, population.base_index, population.offsets, population.signs, *scale,
                         extra=repr(scalars))


def pack(obj: Any) -> bytes:
    """``obj`` serialized for the wire, once (cloudpickle: the format Ray itself uses for task arguments)."""
    from ray import cloudpickle

    return cloudpickle.dumps(obj)


def unpack(payload: bytes) -> Any:
    return pickle.loads(payload)


def _replica(optimizer_class: type[Optimizer], state: dict[str, Any]) -> Optimizer:
    extra = {"init_scale": state.get("init_scale")} if optimizer_class.takes_init_scale else {}
    optimizer = optimizer_class(state["center"], None, seed=state["seed"], device="cpu", **state["config"], **extra)
    optimizer.load_state_dict(state)
    return optimizer


class ShardWorker:
    """The body of one Ray worker actor (``ray.remote(ShardWorker)``): a :class:`LocalEvaluator` on its own
    device (the envs' device if given, else the GPU Ray assigned it, else the CPU) and a replica of the
    optimizer. Shards run with the members' own episode seeds, so a member's fitness is the one a local
    evaluation gives it.
    """

    def __init__(self, policy: Policy, envs: EnvFactory):
        self.device = resolve_device(envs.device) if envs.device is not None else self._assigned_device()
        self.policy = policy
        self.local = LocalEvaluator(policy, dataclasses.replace(envs, device=self.device))
        self.replica: Optimizer | None = None
        self.replica_population: Population | torch.Tensor | None = None  # the replica's last ask
        self.spec: GenerationSpec | None = None
        self.population: Population | torch.Tensor | None = None
        self.settings: EvalSettings | None = None  # the spec's, with the normalizer
        self.seeds: torch.Tensor | None = None

    @staticmethod
    def _assigned_device() -> torch.device:
        import ray

        return torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")

    def ready(self) -> dict[str, Any]:
        """Where this worker runs (answered once its constructor has finished)."""
        import ray

        return {"pid": os.getpid(), "host": os.uname().nodename, "device": str(self.device),
                "node": ray.get_runtime_context().get_node_id()}

    def run(self, payload: bytes) -> bytes:
        """Evaluate a shard: ``payload`` is ``pack((spec, shard))``, the spec only with the worker's first
        shard of a generation; returns ``pack(ShardResult)``."""
        clock = (time.perf_counter(), time.process_time())
        spec, shard = unpack(payload)
        if spec is not None and not self._begin(spec):
            return pack(ShardResult(None, {}, *_elapsed(clock)))
        if self.spec is None or self.spec.call != shard.call:
            return pack(ShardResult(None, {}, *_elapsed(clock)))
        assert self.settings is not None and self.seeds is not None  # set by _begin with the spec
        if shard.rows is not None:
            params = shard.rows.to(self.device)
        else:
            assert self.population is not None  # a spec without rows names its population
            params = self.local.members(self.population, start=shard.start, stop=shard.stop)
        settings = dataclasses.replace(self.settings, seed=self.seeds[shard.start : shard.stop])
        before = self.local.problem_counts()
        evaluation = self.local.evaluate(params, settings)
        problems = {name: count - before.get(name, 0) for name, count in self.local.problem_counts().items()}
        return pack(ShardResult(_to_cpu(evaluation), problems, *_elapsed(clock)))

    # -- one generation's set-up -------------------------------------------------------------------
    def _begin(self, spec: GenerationSpec) -> bool:
        """Take ``spec`` as the current generation; False when the population cannot be rebuilt exactly."""
        self.spec = self.population = None
        if spec.source is not None:  # None: raw rows, carried by the shards
            population = self._population(spec.source, spec.threads)
            if population is None:
                return False
            if isinstance(population, torch.Tensor):
                self.population = population.to(self.device)
            else:
                self.population = dataclasses.replace(population, bases=population.bases.to(self.device))
        normalizer = None
        if spec.normalizer is not None:
            normalizer = ObsNormalizer(self.policy.obs_dim, device=self.device)
            normalizer.load_state_dict(spec.normalizer)
        self.settings = dataclasses.replace(spec.settings, normalizer=normalizer)
        self.seeds = spec.settings.seeds(spec.popsize)
        self.spec = spec
        return True

    def _population(self, source: Ship | Replay | Sync, threads: int) -> Population | torch.Tensor | None:
        """The generation's population, or None when the replica cannot rebuild it exactly."""
        if isinstance(source, Ship):
            return source.population
        with torch_threads(threads):
            if isinstance(source, Sync):
                self.replica = _replica(source.optimizer_class, source.state)
                self.replica_population = self.replica.ask_population()
            elif self.replica is None or self.replica.generation != source.first:
                return None
            else:
                for fitness in source.fitness:
                    self.replica.tell(fitness)
                    self.replica_population = self.replica.ask_population()
        if self.replica_population is None or population_digest(self.replica_population) != source.digest:
            self.replica = None  # the driver sends a Sync next
            return None
        return self.replica_population


def _elapsed(clock: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - clock[0], time.process_time() - clock[1]


def _to_cpu(evaluation: Evaluation) -> Evaluation:
    stats = evaluation.obs_stats
    return dataclasses.replace(
        evaluation,
        returns=evaluation.returns.cpu(),
        episode_returns=evaluation.episode_returns.cpu(),
        episode_lengths=evaluation.episode_lengths.cpu(),
        obs_stats=(stats[0].cpu(), stats[1].cpu(), stats[2].cpu()) if stats is not None else None,
    )

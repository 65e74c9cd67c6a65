"""Population evaluation on Ray worker actors: an :class:`~neuroevo.evaluator.Evaluator` whose workers each
wrap a :class:`~neuroevo.evaluator.LocalEvaluator`.

The population is cut into fixed shards (``shard_size`` members each, by default ``ceil(P / 32)``:
a function of P alone, so results do not depend on the number of workers). Shards go to whichever
worker is free (a ``ray.wait`` loop), so a worker whose episodes end early takes more of them. Back
come returns, episode returns and lengths, env steps and observation statistics, combined in shard
order: the result is the same for 1 or 100 workers, and each member's fitness is the one the local
evaluation gives it (its parameters and its episode seeds, nothing else).

A worker that dies (killed process, lost node) has its shard run again on the others, and a
replacement is started, however many die and whenever; the generation completes with the same fitness
values. When no worker is left and none starts, or one shard has taken :data:`SHARD_LOSSES` workers down
with it in one generation (a member that crashes whoever runs it), :class:`WorkersLost` is raised (the
trainer then writes a checkpoint and stops).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from neuroevo.algorithms import Optimizer, Population
from neuroevo.checkpoint import first_line
from neuroevo.distributed.cluster import connect, import_ray
from neuroevo.distributed.worker import (
    GenerationSpec,
    Replay,
    Shard,
    ShardResult,
    ShardWorker,
    Ship,
    Sync,
    pack,
    population_digest,
    unpack,
)
from neuroevo.evaluator import EnvFactory, Evaluator, combine, shard_bounds
from neuroevo.policies import Policy
from neuroevo.rollout import EvalSettings, Evaluation

#: generations of fitness the driver keeps to bring a worker's replica up to date without a Sync
HISTORY = 8
#: workers one shard may lose in one generation before the generation gives up: a shard that every worker dies
#: on (a member whose episodes crash the process) must not start replacements forever
SHARD_LOSSES = 5
#: seconds between checks that the Ray head (its GCS server) still answers
HEAD_CHECK_INTERVAL = 2.0
#: failed checks in a row after which the head counts as lost (Ray itself aborts the driver, without a word of
#: what to do, 60 s after losing it; its calls block until then)
HEAD_CHECKS = 3
#: the exit status of a driver whose Ray head is lost
HEAD_LOST_STATUS = 3


def head_reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether the Ray head's GCS server at ``address`` ("HOST:PORT") accepts a connection."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class WorkersLost(RuntimeError):
    """Every Ray worker is gone (and none could be started), or one shard took :data:`SHARD_LOSSES` workers
    down with it: the generation cannot finish."""


@dataclass
class _Worker:
    handle: Any
    id: int
    inflight: int = 0
    """shards submitted and not yet collected"""
    call: int | None = None
    """the generation whose spec the worker holds (or will, once its queue reaches it)"""
    specs: int = 0
    """specs sent to it so far"""
    replica_generation: int | None = None
    """the optimizer generation its replica was last asked at; None: no replica"""
    where: dict[str, Any] = dataclasses.field(default_factory=dict)
    """where it runs, as its ``ready()`` answered: pid, host, device and Ray node id (once it has started)"""


@dataclass
class _Task:
    """A shard in flight: its index, its worker, the worker's spec count at submission, whether it carried a Sync."""

    index: int
    worker: _Worker
    specs: int
    sync: bool


@dataclass
class _Generation:
    """One call of :meth:`RayEvaluator.evaluate`: what the workers are told and what is counted."""

    spec: GenerationSpec
    population: Population | torch.Tensor
    optimizer: Optimizer | None
    digest: str | None
    shards: list[tuple[int, int]]
    workers: int
    bytes_sent: int = 0
    bytes_received: int = 0
    busy_seconds: float = 0.0
    cpu_seconds: float = 0.0
    retried: int = 0
    lost: int = 0
    syncs: int = 0
    round_trips: int = 0
    shard_losses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    """shard index -> workers lost while it was in flight on them"""


class RayEvaluator(Evaluator):
    """Evaluates populations on ``workers`` Ray actors, each with its own envs.

    Args:
        policy: the policy architecture (sent once to each worker).
        envs: how each worker makes its envs (one per shard size); ``envs.device`` is the workers' torch
            device, by default the GPU Ray assigns (GPUs are shared out among the workers when the cluster has
            any), else the CPU.
        workers: number of worker actors.
        cpus_per_worker: CPUs each worker reserves in Ray (default ``envs.num_threads``, else 1).
        address: None starts a local Ray instance bound to 127.0.0.1 (``include_dashboard`` to get
            its dashboard, on 127.0.0.1 too); ``"auto"`` or ``"HOST:PORT"`` joins a cluster.
        shard_size: members per shard (default ``ceil(P / 32)``).
        prefetch: shards queued on each worker at a time (2: the next one is there when one ends).
        replace_lost: start a new worker for each one lost, however many are lost and however close together
            (a generation gives up only when one of its shards was in flight on :data:`SHARD_LOSSES` workers that
            died: a shard that crashes whoever runs it).
        spread: place the workers across the cluster's nodes (Ray's ``SPREAD`` strategy), so that each node
            gets its share and a lost node takes as few of them as possible; False: Ray's default placement.
        start_timeout: seconds to wait for workers to start before giving up.

    After each :meth:`evaluate`, :attr:`last_metrics` holds ``dist/...`` metrics of that generation.
    """

    def __init__(
        self,
        policy: Policy,
        envs: EnvFactory,
        workers: int,
        *,
        address: str | None = None,
        include_dashboard: bool = False,
        shard_size: int | None = None,
        cpus_per_worker: float | None = None,
        prefetch: int = 2,
        replace_lost: bool = True,
        spread: bool = True,
        start_timeout: float = 300.0,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if shard_size is not None and shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        self.ray = import_ray()
        self._owns_ray = connect(address, include_dashboard=include_dashboard)
        self.policy = policy
        self.shard_size = shard_size
        self.prefetch = max(1, int(prefetch))
        self.replace_lost = replace_lost
        self.start_timeout = float(start_timeout)
        self.last_metrics: dict[str, float] = {}
        self._problems: collections.Counter[str] = collections.Counter()
        self._history: dict[int, torch.Tensor] = {}  # optimizer generation -> the fitness it was told
        self._optimizer: Optimizer | None = None
        self._calls = itertools.count(1)
        self._ids = itertools.count()
        self._workers: dict[int, _Worker] = {}
        self._starting: dict[Any, _Worker] = {}  # ready() ref -> worker not yet started
        self.on_head_lost: Callable[[str], str] | None = None
        """called (from the watchdog thread) with a one-line description when the Ray head is lost; returns the
        line to print before this process exits with HEAD_LOST_STATUS (the trainer writes its checkpoint here)"""
        self._closed = threading.Event()
        try:
            gcs_address: str | None = self.ray.get_runtime_context().gcs_address
        except Exception:  # a Ray without it: the head is not watched
            gcs_address = None
        if gcs_address is not None:
            threading.Thread(target=self._watch_head, args=(gcs_address,), daemon=True, name="ray-head-watch").start()
        device = str(envs.device) if envs.device is not None else None
        self._actor_class = self._remote_class(workers, cpus_per_worker or envs.num_threads or 1, device, spread)
        self._worker_args = (policy, envs)
        try:
            self._start_all(workers)
        except BaseException:
            self.close()
            raise

    def _remote_class(self, workers: int, cpus: float, device: str | None, spread: bool):
        ray = self.ray
        available = ray.cluster_resources()
        if workers * cpus > available.get("CPU", 0):
            raise ValueError(
                f"{workers} workers of {cpus:g} CPU(s) each need {workers * cpus:g} CPUs; the Ray cluster has "
                f"{available.get('CPU', 0):g}"
            )
        gpus = available.get("GPU", 0)
        per_worker = 0.0 if device == "cpu" or not gpus else min(1.0, gpus / workers)
        placement = {"scheduling_strategy": "SPREAD"} if spread else {}
        return ray.remote(ShardWorker).options(num_cpus=cpus, num_gpus=per_worker, max_restarts=0, **placement)

    def _start_worker(self) -> None:
        worker = _Worker(self._actor_class.remote(*self._worker_args), next(self._ids))
        self._starting[worker.handle.ready.remote()] = worker

    def _start_all(self, workers: int) -> None:
        for _ in range(workers):
            self._start_worker()
        refs = list(self._starting)
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout)
        if len(ready) < len(refs):
            raise RuntimeError(
                f"only {len(ready)} of {workers} Ray workers started within {self.start_timeout:g} s "
                f"(cluster resources: {self.ray.cluster_resources()})"
            )
        for ref in refs:
            try:
                where = self.ray.get(ref)
            except self.ray.exceptions.RayError as err:
                raise RuntimeError(f"a Ray worker failed to start: {err}") from None
            worker = self._starting.pop(ref)
            worker.where = where
            self._workers[worker.id] = worker

    def _watch_head(self, address: str) -> None:
        """While the evaluator is open: when the head stops answering, every Ray call of this process blocks until
        Ray ends it. Say so, let :attr:`on_head_lost` keep what can be kept, and exit with HEAD_LOST_STATUS."""
        misses = 0
        while not self._closed.wait(HEAD_CHECK_INTERVAL):
            if not self.ray.is_initialized():  # this process shut Ray down itself (left without closing us)
                return
            misses = 0 if head_reachable(address) else misses + 1
            if misses < HEAD_CHECKS or self._closed.is_set():
                continue
            what = f"the Ray head at {address} does not answer (killed, or its node lost)"
            try:
                line = self.on_head_lost(what) if self.on_head_lost is not None else what
            except Exception as err:  # noqa: BLE001 - the exit below must happen
                line = f"{what}; keeping the run's state failed too: {err}"
            print(f"neuroevo: error: {line}", file=sys.stderr, flush=True)
            os._exit(HEAD_LOST_STATUS)

    # -- the evaluator interface -----------------------------------------------------------------
    @property
    def workers(self) -> int:
        """Workers ready to take shards now."""
        return len(self._workers)

    def problem_counts(self) -> dict[str, int]:
        """Cumulative counts of bad input the workers' envs absorbed (as ``VectorEnv.problem_counts``)."""
        return dict(self._problems)

    @torch.no_grad()
    def evaluate(
        self, population: Population | torch.Tensor, settings: EvalSettings, optimizer: Optimizer | None = None
    ) -> Evaluation:
        """The local evaluation's result, member for member, from the workers (on the CPU).

        With ``optimizer`` (the one that asked for ``population``), workers keep a replica of it and per
        generation receive only the previous fitness (O(P) bytes, not O(D)); without it a compact population
        is shipped (its bases once per worker), and params [P, D] go as rows with each shard.
        """
        popsize = len(population)
        settings = settings.fixed()
        settings.seeds(popsize)  # a seed tensor of the wrong shape fails here, not on every worker
        seed = settings.seed.detach().cpu().clone() if isinstance(settings.seed, torch.Tensor) else settings.seed
        normalizer = settings.normalizer
        spec = GenerationSpec(
            call=next(self._calls),
            popsize=popsize,
            settings=dataclasses.replace(settings, seed=seed, normalizer=None),
            normalizer=_cpu_state(normalizer) if normalizer is not None else None,
            threads=torch.get_num_threads(),
            source=None,
        )
        if optimizer is not self._optimizer:  # replicas and history belong to one optimizer
            self._optimizer = optimizer
            self._history.clear()
            for worker in self._workers.values():
                worker.replica_generation = None
        generation = _Generation(
            spec,
            population,
            optimizer,
            population_digest(population) if optimizer is not None or isinstance(population, Population) else None,
            shard_bounds(popsize, self.shard_size),
            self.workers,
        )
        start = time.perf_counter()
        results = self._run(generation)
        evaluation = combine(results, self.policy.obs_dim)
        if optimizer is not None:
            self._history[optimizer.generation] = evaluation.returns.clone()
            self._history.pop(optimizer.generation - HISTORY, None)
        self.last_metrics = self._metrics(generation, time.perf_counter() - start)
        return evaluation

    # -- scheduling ------------------------------------------------------------------------------
    def _run(self, generation: _Generation) -> list[Evaluation]:
        """Every shard evaluated once: free workers take the next shard; a lost worker's shard is queued again."""
        queue = collections.deque(range(len(generation.shards)))
        results: list[Evaluation | None] = [None] * len(generation.shards)
        inflight: dict[Any, _Task] = {}
        while queue or inflight:
            for depth in range(self.prefetch):  # every worker one shard, then a second one queued
                for worker in self._workers.values():
                    if queue and worker.inflight <= depth:
                        ref, task = self._submit(generation, worker, queue.popleft())
                        inflight[ref] = task
            for ref in self._wait(inflight):
                if ref in self._starting:
                    self._started(ref)
                    continue
                task = inflight.pop(ref)
                result = self._collect(ref, task, generation)
                if result is None:
                    queue.appendleft(task.index)
                    generation.retried += 1
                else:
                    results[task.index] = result
        return [result for result in results if result is not None]  # every one is there once the queue is empty

    def _wait(self, inflight: dict[Any, _Task]) -> list[Any]:
        if not inflight and not self._starting:
            raise WorkersLost("every Ray worker is lost and none can be started")
        # With nothing in flight, only a starting replacement can finish the generation.
        timeout = None if inflight else self.start_timeout
        ready, _ = self.ray.wait([*inflight, *self._starting], num_returns=1, timeout=timeout)
        if not ready:
            raise WorkersLost(f"every Ray worker is lost and no replacement started within {self.start_timeout:g} s")
        return ready

    def _submit(self, generation: _Generation, worker: _Worker, index: int):
        start, stop = generation.shards[index]
        rows = None
        if isinstance(generation.population, torch.Tensor) and generation.optimizer is None:
            rows = generation.population[start:stop].detach().cpu().clone()  # a slice would pickle all rows
        shard = Shard(generation.spec.call, start, stop, rows)
        spec = None
        if worker.call != generation.spec.call:
            spec = self._spec_for(generation, worker)
            worker.call = generation.spec.call
            worker.specs += 1
            if isinstance(spec.source, Sync):
                generation.syncs += 1
        payload = pack((spec, shard))
        generation.bytes_sent += len(payload)
        generation.round_trips += 1
        worker.inflight += 1
        task = _Task(index, worker, worker.specs, spec is not None and isinstance(spec.source, Sync))
        return worker.handle.run.remote(payload), task

    def _spec_for(self, generation: _Generation, worker: _Worker) -> GenerationSpec:
        """The generation's spec with the cheapest source this worker can rebuild the population from."""
        population, optimizer = generation.population, generation.optimizer
        source: Ship | Replay | Sync | None
        if optimizer is None:  # rows with each shard, or the compact population once
            source = None if isinstance(population, torch.Tensor) else Ship(_cpu_population(population))
        else:
            assert generation.digest is not None  # made for every population that comes with its optimizer
            source = self._replay(worker, optimizer.generation, generation.digest)
            if source is None:
                source = Sync(type(optimizer), _cpu_state(optimizer), generation.digest)
            worker.replica_generation = optimizer.generation
        return GenerationSpec(**{**generation.spec.__dict__, "source": source})

    def _replay(self, worker: _Worker, current: int, digest: str) -> Replay | None:
        first = worker.replica_generation
        if first is None or first > current or any(g not in self._history for g in range(first, current)):
            return None
        return Replay(first, [self._history[g] for g in range(first, current)], digest)

    def _collect(self, ref, task: _Task, generation: _Generation) -> Evaluation | None:
        """The shard's evaluation, or None when it must run again (worker lost or out of sync)."""
        exceptions = self.ray.exceptions
        worker = task.worker
        try:
            payload: bytes = self.ray.get(ref)
        except exceptions.RayTaskError:
            raise  # an error in the evaluation itself: every worker would raise it again
        except (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.ObjectLostError,
                exceptions.NodeDiedError) as err:
            generation.lost += self._lose(worker)
            generation.shard_losses[task.index] += 1
            if generation.shard_losses[task.index] >= SHARD_LOSSES:
                start, stop = generation.shards[task.index]
                raise WorkersLost(
                    f"{SHARD_LOSSES} Ray workers died in this generation while evaluating members {start} to "
                    f"{stop - 1} (the last: {first_line(err, limit=200)}); do they crash the process that runs them?"
                ) from None
            return None
        worker.inflight -= 1
        generation.bytes_received += len(payload)
        result: ShardResult = unpack(payload)
        generation.busy_seconds += result.seconds
        generation.cpu_seconds += result.cpu_seconds
        if result.evaluation is None:
            if task.sync:
                raise RuntimeError("a worker could not rebuild the population from the optimizer's state")
            if task.specs == worker.specs:  # no newer spec on its way: send a Sync next
                worker.call = worker.replica_generation = None
            return None
        self._problems.update(result.problems)
        return result.evaluation

    def _lose(self, worker: _Worker) -> bool:
        """Drop a dead worker (and start a replacement); False if it was dropped already."""
        if self._workers.pop(worker.id, None) is None:
            return False
        try:
            self.ray.kill(worker.handle, no_restart=True)
        except Exception:  # already gone with its node
            pass
        if self.replace_lost:
            self._start_worker()
        return True

    def _started(self, ref) -> None:
        worker = self._starting.pop(ref)
        try:
            where = self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return  # the replacement did not start; the others go on
        worker.where = where
        self._workers[worker.id] = worker

    def _metrics(self, generation: _Generation, wall: float) -> dict[str, float]:
        capacity = max(generation.workers, 1) * max(wall, 1e-9)
        return {
            "dist/workers": self.workers,
            "dist/nodes": len(self.worker_nodes()),
            # remote calls (one per shard, and one per retry): each is a request and its reply
            "dist/round_trips": generation.round_trips,
            "dist/shards": len(generation.shards),
            "dist/bytes_sent": generation.bytes_sent,
            "dist/bytes_received": generation.bytes_received,
            "dist/idle_fraction": min(max(1.0 - generation.busy_seconds / capacity, 0.0), 1.0),
            # CPU seconds (all threads) per busy second: 1 per physics thread when the workers had their
            # cores to themselves, less when they waited for a CPU (other processes on their nodes)
            "dist/worker_cpu_share": generation.cpu_seconds / max(generation.busy_seconds, 1e-9),
            "dist/worker_cpu_seconds": generation.cpu_seconds,
            "dist/retried_shards": generation.retried,
            "dist/workers_lost": generation.lost,
            "dist/syncs": generation.syncs,
        }

    # -- life cycle ------------------------------------------------------------------------------
    def worker_handles(self) -> list[Any]:
        """The Ray actor handles of the ready workers (e.g. to kill one in a test)."""
        return [worker.handle for worker in self._workers.values()]

    def worker_placement(self) -> list[dict[str, Any]]:
        """Where each ready worker runs: its ``pid``, ``host``, ``device`` and Ray ``node`` id."""
        return [dict(worker.where) for worker in self._workers.values()]

    def worker_nodes(self) -> dict[str, int]:
        """How many of the ready workers run on each Ray node (by node id)."""
        return dict(collections.Counter(where.get("node", "") for where in self.worker_placement()))

    def close(self) -> None:
        """Stop the workers, and the local Ray instance if this evaluator started it."""
        self._closed.set()
        for worker in [*self._workers.values(), *self._starting.values()]:
            try:
                self.ray.kill(worker.handle, no_restart=True)
            except Exception:  # already gone
                pass
        self._workers.clear()
        self._starting.clear()
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns_ray = False




def _cpu_state(obj) -> dict[str, Any]:
    """``obj.state_dict()`` with its tensors on the CPU."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in obj.state_dict().items()}


def _cpu_population(population: Population) -> Population:
    return dataclasses.replace(population, bases=population.bases.detach().cpu())

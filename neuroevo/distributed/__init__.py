"""Distributed population evaluation on Ray: the local evaluator, run on worker actors.

``RayEvaluator(env_id, policy, workers=N).evaluate(population, ...)`` returns what
:func:`neuroevo.rollout.evaluate` returns for the same members and seeds; the trainer uses it when
``run.workers > 0`` (``neuroevo train --workers N [--ray-address auto|HOST:PORT]``). Ray is imported
only when a cluster is asked for.
"""

from neuroevo.distributed.cluster import connect
from neuroevo.distributed.evaluator import DEFAULT_SHARDS, RayEvaluator, WorkersLost, combine, shard_bounds

__all__ = ["DEFAULT_SHARDS", "RayEvaluator", "WorkersLost", "combine", "connect", "shard_bounds"]

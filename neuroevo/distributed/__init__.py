"""Distributed population evaluation on Ray: the local evaluator, run on worker actors.

``RayEvaluator(policy, EnvFactory(env_id), workers=N).evaluate(population, settings)`` returns what a
:class:`~neuroevo.evaluator.LocalEvaluator` returns for the same members and seeds; the trainer holds one when
``run.workers > 0`` (``neuroevo train --workers N [--ray-address auto|HOST:PORT]``). Ray is imported
only when a cluster is asked for.
"""

from neuroevo.distributed.cluster import connect
from neuroevo.distributed.evaluator import RayEvaluator, WorkersLost
from neuroevo.evaluator import DEFAULT_SHARDS, combine, shard_bounds

__all__ = ["DEFAULT_SHARDS", "RayEvaluator", "WorkersLost", "combine", "connect", "shard_bounds"]

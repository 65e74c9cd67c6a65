"""Training across several Ray nodes on this machine: a head and one more node, each its own raylet and
object store (capped at 80 MiB), started by Ray's own ``ray.cluster_utils.Cluster`` (``local_cluster``). The
workers spread over the nodes; a whole node is killed mid-run (its raylet, object store and workers, no graceful
stop) and the run goes on, on the surviving node, with the same trajectory as a local run."""

import os
import signal
import threading

import pytest
import ray
import torch

import neuroevo
from neuroevo.distributed.cluster import local_cluster
from neuroevo.faults import PAUSE_DIR_ENV, PauseGate, differences, run_record

NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def nodes():
    with local_cluster(2, **NODE) as cluster:
        yield cluster, list(cluster.worker_nodes)


def _config(workers, address=None, generations=4):
    return neuroevo.resolve_config(
        "CartPole-v1",
        {
            "run": {"algo": "es", "seed": 3, "generations": generations, "target": None, "eval_episodes": 2,
                    "device": "cpu", "shard_size": 3, "workers": workers, "ray_address": address,
                    "checkpoint_every": 1},
            "env": {"max_steps": 60, "episodes": 2},
            "policy": {"kind": "mlp", "hidden": [8], "normalize_obs": True},
            "es": {"popsize": 12},
        },
    )


def test_a_run_across_nodes_survives_losing_a_whole_node(nodes, tmp_path, monkeypatch):
    cluster, others = nodes
    neuroevo.Trainer(_config(0), tmp_path / "local").run()

    trainer = neuroevo.Trainer(_config(2, cluster.address), tmp_path / "run")
    # The trainer stops inside its checkpoint writes (faults.PauseGate): after generation 2 is written, a
    # whole node goes while the run waits there, then the run goes on.
    gate = PauseGate(tmp_path / "gate", match="last.pt")
    for name, value in gate.env().items():
        monkeypatch.setenv(name, value)
    seen: dict = {}
    evaluator = trainer.evaluator  # the workers start here
    close = evaluator.close

    def close_noting_placement():  # the trainer closes its evaluator when the run ends
        seen["final"] = evaluator.worker_nodes()
        close()

    monkeypatch.setattr(evaluator, "close", close_noting_placement)

    def kill_a_node():
        gate.release(gate.wait(60))  # generation 1
        marker = gate.wait(60)  # generation 2
        seen["placed"] = evaluator.worker_nodes()
        seen["alive"] = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        victim = seen["victim"] = next(node for node in others if node.node_id in seen["placed"])
        # the whole node at once, as when a machine fails: its worker processes, raylet and object store
        for where in evaluator.worker_placement():
            if where["node"] == victim.node_id:
                os.kill(where["pid"], signal.SIGKILL)
        cluster.remove_node(victim, allow_graceful=False)
        os.environ.pop(PAUSE_DIR_ENV)  # the later writes go through
        gate.release(marker)

    killer = threading.Thread(target=kill_a_node)
    killer.start()
    try:
        result = trainer.run()
    finally:
        killer.join(timeout=60)
        monkeypatch.delenv(PAUSE_DIR_ENV, raising=False)

    assert len(seen["placed"]) == 2 and set(seen["placed"].values()) == {1}  # one worker on each of two nodes
    assert set(seen["placed"]) <= seen["alive"] and len(seen["alive"]) == 2
    assert result.generations == 4
    ours, local = run_record(tmp_path / "run"), run_record(tmp_path / "local")
    # every logged value, the optimizer's state and the best policy, bit for bit (the configs differ in
    # run.workers and run.ray_address only); the observation statistics to float64 rounding (summed over
    # shards in another order than in one process)
    assert differences(ours, local, ignore=("time/", "dist/", "wall_time", "config", "normalizer")) == []
    for name in ("mean", "m2"):
        torch.testing.assert_close(ours["checkpoint"]["normalizer"][name], local["checkpoint"]["normalizer"][name],
                                   rtol=1e-12, atol=1e-9)
    lost = [row["dist/workers_lost"] for row in ours["metrics"]]
    assert lost == [0, 0, 1, 0] and ours["metrics"][2]["dist/retried_shards"] >= 1
    # the generations after the kill ran on the surviving node (the head), on the worker there; the
    # replacement started for the lost one waits for a free CPU (none is left)
    assert seen["final"] == {cluster.head_node.node_id: 1}
    assert [row["dist/workers"] for row in ours["metrics"]] == [2, 2, 1, 1]

"""What a generation costs in coordination on a Ray cluster of 1, 2 and 3 nodes (on this machine, with Ray's
``ray.cluster_utils.Cluster``: each node its own raylet and object store), from the Ray evaluator's own
counters: ``dist/bytes_sent``, ``dist/bytes_received`` and ``dist/round_trips`` (remote calls, one per shard)
per generation, in total and per node, and a linear model of them fitted on these runs, which predicts the
cost at 16 and 64 nodes of 16 cores.

    nice -n 10 .venv/bin/python scripts/cluster_cost.py --out results/cluster

Wall-clock time on one machine says nothing about a cluster; these counts do not depend on it: they are the
payload sizes the driver serializes and the calls it makes, the same on any network. One worker per node
(one CPU each); ES on CartPole with populations of 256 (32 shards of 8, then 64 shards of 4) and 1024 (32
shards of 32); the first generation (the optimizer's state goes to each worker once) is reported apart
from the steady state (generations 2 on: each worker gets the previous fitness and its member ranges).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import neuroevo
from neuroevo.distributed.cluster import local_cluster

GENERATIONS = 5
RUNS = ((256, 8), (256, 4), (1024, 32))  # (popsize, shard_size): 32, 64 and 32 shards
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
# (nodes, cores per node, popsize): a population of 8 members per worker, two shards of 4 queued on each
PREDICT = ((16, 16, 2048), (64, 16, 8192))


def _config(workers: int, popsize: int, shard_size: int, address: str):
    return neuroevo.resolve_config(
        "CartPole-v1",
        {
            "run": {"algo": "es", "seed": 0, "generations": GENERATIONS, "target": None, "eval_episodes": 1,
                    "device": "cpu", "shard_size": shard_size, "workers": workers, "ray_address": address},
            "env": {"max_steps": 50, "episodes": 1},
            "policy": {"kind": "mlp", "hidden": [16], "normalize_obs": True},
            "es": {"popsize": popsize},
        },
    )


def measure(nodes: int) -> list[dict]:
    rows = []
    with local_cluster(nodes, prefix="ne-cost-", **NODE) as cluster:
        for popsize, shard_size in RUNS:
            result = neuroevo.Trainer(_config(nodes, popsize, shard_size, cluster.address)).run()
            first, steady = result.history[0], result.history[1:]
            assert all(row["dist/nodes"] == nodes and row["dist/retried_shards"] == 0 for row in result.history)

            def median(key, rows=steady):
                return statistics.median(row[key] for row in rows)

            rows.append({
                "nodes": nodes, "workers": nodes, "popsize": popsize, "shards": int(first["dist/shards"]),
                "first": {k: first[f"dist/{k}"] for k in ("bytes_sent", "bytes_received", "round_trips", "syncs")},
                "bytes_sent": median("dist/bytes_sent"), "bytes_received": median("dist/bytes_received"),
                "round_trips": median("dist/round_trips"), "syncs": median("dist/syncs"),
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def fit(rows: list[dict]) -> dict[str, float]:
    """Least squares over the steady-state rows of the driver's payloads per generation:

    bytes_sent = workers * (spec + spec_per_member * popsize) + shards * shard_request
    bytes_received = shards * shard_result + popsize * result_per_member

    (each worker gets one spec per generation, carrying the previous generation's fitness, P numbers; each
    shard is one request and one reply)."""
    import numpy as np

    def solve(columns, key):
        a = np.array(columns, dtype=float)
        return np.linalg.lstsq(a, np.array([r[key] for r in rows], dtype=float), rcond=None)[0]

    spec, spec_member, request = solve(
        [[r["workers"], r["workers"] * r["popsize"], r["shards"]] for r in rows], "bytes_sent")
    result, result_member = solve([[r["shards"], r["popsize"]] for r in rows], "bytes_received")
    return {"spec_bytes": float(spec), "spec_bytes_per_member": float(spec_member),
            "shard_request_bytes": float(request), "shard_result_bytes": float(result),
            "result_bytes_per_member": float(result_member)}


def predict(model: dict[str, float], nodes: int, cores: int, popsize: int) -> dict[str, float]:
    # One worker per core but one (the driver's), two shards queued per worker so that none waits.
    workers = nodes * cores - 1
    shards = 2 * workers
    sent = workers * (model["spec_bytes"] + model["spec_bytes_per_member"] * popsize)
    sent += model["shard_request_bytes"] * shards
    received = model["shard_result_bytes"] * shards + model["result_bytes_per_member"] * popsize
    return {"nodes": nodes, "cores_per_node": cores, "popsize": popsize, "workers": workers, "shards": shards,
            "bytes_sent": sent, "bytes_received": received, "round_trips": shards,
            "bytes_per_node": (sent + received) / nodes, "round_trips_per_node": shards / nodes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("results/cluster"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [row for nodes in args.nodes for row in measure(nodes)]
    model = fit(rows)
    predictions = [predict(model, nodes, cores, popsize) for nodes, cores, popsize in PREDICT]
    report = {
        "command": "nice -n 10 .venv/bin/python scripts/cluster_cost.py --out " + str(args.out),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared with other jobs)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "measured": rows, "model": model, "predicted": predictions,
    }
    (args.out / "coordination.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["| nodes | workers | popsize | shards | sent B/gen | received B/gen | round trips/gen | per node: B "
             "| per node: round trips | first gen sent B |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per_node = (r["bytes_sent"] + r["bytes_received"]) / r["nodes"]
        lines.append(f"| {r['nodes']} | {r['workers']} | {r['popsize']} | {r['shards']} | {r['bytes_sent']:,.0f} | "
                     f"{r['bytes_received']:,.0f} | {r['round_trips']:.0f} | {per_node:,.0f} | "
                     f"{r['round_trips'] / r['nodes']:.1f} | {r['first']['bytes_sent']:,.0f} |")
    for p in predictions:
        lines.append(f"| {p['nodes']} x {p['cores_per_node']} cores (predicted) | {p['workers']} | {p['popsize']} | "
                     f"{p['shards']} | "
                     f"{p['bytes_sent']:,.0f} | {p['bytes_received']:,.0f} | {p['round_trips']} | "
                     f"{p['bytes_per_node']:,.0f} | {p['round_trips_per_node']:.1f} | |")
    lines.append("")
    lines.append(f"model: {json.dumps({k: round(v, 1) for k, v in model.items()})}")
    (args.out / "coordination.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

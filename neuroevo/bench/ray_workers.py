"""``neuroevo bench ray``: scaling of distributed evaluation on one machine.

Env steps per second of population evaluation on Hopper-v5 and Humanoid-v5 (mujoco backend, one physics
thread per worker) for 1, 2, 4, 8 and 16 Ray workers (capped to the cores available), as efficiency
against 1 worker x N, with the workers' idle fraction and the bytes sent per generation. The in-process
evaluator on all cores is the reference.

    neuroevo bench ray --out results/bench_ray.txt     # or: .venv/bin/python scripts/bench_ray.py ...

The population is an ES population of 512 linear policies around zero (sigma 0.1; the default 32 shards
of 16 members): random policies whose episodes end at very different times, as early in training, which
is where load balancing matters. Each figure is one warm-up generation, then ``--generations`` timed
generations: their env steps over their wall time (``time.perf_counter()``).
The machine's load average is printed with every row: other processes on the machine lower the figures.
Ray runs its workers at niceness 15 (so that its own services stay responsive); on a machine shared with
other jobs they would then yield to those jobs while the in-process reference does not, so this bench
starts its local Ray instance with the workers at niceness 0 (``--niceness``, ``RAY_worker_niceness``).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch

import neuroevo
from neuroevo.algorithms import ES
from neuroevo.bench.common import Column, Table, command_line, cpu_model, field, load_average, write_json, write_text
from neuroevo.distributed import RayEvaluator, connect
from neuroevo.evaluator import EnvFactory, EvalSettings
from neuroevo.policies import Linear, output_dim

FOOTNOTE = [
    "efficiency: env steps/s of N workers / (N x those of 1 worker). idle: share of the workers' wall time not",
    "spent evaluating shards (waiting for the driver, for the last shards, for Ray). cpu share: CPU seconds per",
    "second spent evaluating (1: the worker had a core to itself; less: it waited for one, behind other jobs).",
    "steps/cpu-s: env steps per CPU second of the workers (in-process: of the whole process), which the machine's",
    "other load does not change: its ratio between N workers and 1 worker is the scaling without contention.",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The Ray bench's flags on ``parser``."""
    parser.add_argument("--envs", default="Hopper-v5,Humanoid-v5", help="env ids (default: Hopper-v5,Humanoid-v5)")
    parser.add_argument("--workers", default="1,2,4,8,16", help="worker counts, starting at 1")
    parser.add_argument("--popsize", type=int, default=512, help="ES population size (default: 512)")
    parser.add_argument("--generations", type=int, default=5, help="timed generations per row (default: 5)")
    parser.add_argument("--niceness", type=int, default=0, help="of the Ray workers (Ray's default: 15)")
    parser.add_argument("--out", help="also write the table here")
    parser.add_argument("--json", help="also write the rows here")


def _problem(env_id: str, popsize: int) -> tuple[Linear, ES]:
    env = neuroevo.make_env(env_id, 1, "cpu", num_threads=1)
    policy = Linear(env.obs_dim, output_dim(env.single_action_space))
    return policy, ES(policy.init_params(), popsize=popsize, sigma=0.1, seed=0)


def measure_local(env_id: str, popsize: int, generations: int, threads: int) -> dict:
    """The in-process evaluator: one env of P copies stepped on ``threads`` physics threads."""
    policy, es = _problem(env_id, popsize)
    params = es.ask()
    env = neuroevo.make_env(env_id, popsize, "cpu", num_threads=threads)
    neuroevo.evaluate(policy, params, env, seed=0)  # warm-up
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    for generation in range(generations):
        steps += neuroevo.evaluate(policy, params, env, seed=generation + 1).env_steps
    return {"env_steps": steps, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def measure_workers(env_id: str, workers: int, popsize: int, generations: int) -> dict:
    """``workers`` Ray workers of one CPU and one physics thread each, the default shards."""
    policy, es = _problem(env_id, popsize)
    population = es.ask_population()  # the same population every generation, with fresh episode seeds
    with RayEvaluator(policy, EnvFactory(env_id, device="cpu", num_threads=1), workers) as evaluator:
        evaluator.evaluate(population, EvalSettings(seed=0), es)  # warm-up: envs, noise table, replicas
        steps, metrics, start = 0, [], time.perf_counter()
        for generation in range(generations):
            steps += evaluator.evaluate(population, EvalSettings(seed=generation + 1), es).env_steps
            metrics.append(evaluator.last_metrics)
        seconds = time.perf_counter() - start

    def mean(key):
        return sum(m[key] for m in metrics) / len(metrics)

    return {"env_steps": steps, "seconds": seconds, "idle_fraction": mean("dist/idle_fraction"),
            "cpu_share": mean("dist/worker_cpu_share"), "cpu_seconds": generations * mean("dist/worker_cpu_seconds"),
            "bytes_sent": mean("dist/bytes_sent"), "shards": metrics[-1]["dist/shards"]}


def _table(cores: int) -> Table:
    def evaluator(row: dict[str, Any]) -> str:
        return f"{row['workers']} Ray workers" if row["workers"] else f"in-process, {cores} threads"

    return Table([
        Column("env", 12, field("env"), left=True),
        Column("evaluator", 22, evaluator, left=True),
        Column("env steps/s", 11, field("env_steps_per_s", ".0f")),
        Column("efficiency", 10, field("efficiency", ".0%")),
        Column("idle", 5, field("idle_fraction", ".0%")),
        Column("cpu share", 9, field("worker_cpu_share", ".0%")),
        Column("steps/cpu-s", 11, field("env_steps_per_cpu_s", ".0f")),
        Column("bytes/gen", 9, field("bytes_sent", ".0f")),
        Column("load", 5, field("load", ".2f")),
    ])


def run(
    envs: list[str], worker_counts: list[int], popsize: int, generations: int, niceness: int
) -> tuple[list[dict], list[str]]:
    """(one row per env and evaluator, the report's lines). Starts a local Ray instance on all the cores
    available (and shuts it down) unless Ray is running in this process already."""
    cores = len(os.sched_getaffinity(0))
    load = load_average() or (float("nan"),) * 3
    lines = [
        f"command: {command_line()}",
        f"machine: {cores} cores available ({cpu_model()}), torch {torch.__version__}, "
        f"ray {__import__('ray').__version__}, {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
        + ", ".join(f"{x:.2f}" for x in load),
        f"population: ES, linear policy, popsize {popsize}, 1 episode per member, {generations} timed generations "
        f"after a warm-up; Ray workers at niceness {niceness}; load = 1-minute load average after the row",
    ]
    skipped = [n for n in worker_counts if n > cores]
    if skipped:
        lines.append(f"not measured: {', '.join(map(str, skipped))} workers (more than the {cores} cores available)")
    worker_counts = [n for n in worker_counts if n <= cores]
    table = _table(cores)
    lines += ["", table.header(), "-" * len(table.header())]
    started = _connect(cores, niceness)
    try:
        rows = [row for env_id in envs for row in _env_rows(env_id, worker_counts, popsize, generations, cores)]
    finally:
        if started:
            __import__("ray").shutdown()
    lines += [table.row(row) for row in rows] + ["", *FOOTNOTE]
    return rows, lines


def _connect(cores: int, niceness: int) -> bool:
    """``connect(num_cpus=cores)`` with the workers at ``niceness`` (read by the raylet that it starts)."""
    previous = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = str(niceness)
    try:
        return connect(num_cpus=cores)
    finally:
        if previous is None:
            del os.environ["RAY_worker_niceness"]
        else:
            os.environ["RAY_worker_niceness"] = previous


def _env_rows(env_id: str, worker_counts: list[int], popsize: int, generations: int, cores: int) -> list[dict]:
    """The in-process row, then one row per worker count (each printed as it is measured)."""
    local = measure_local(env_id, popsize, generations, cores)
    rows: list[dict] = [{"env": env_id, "workers": 0, "env_steps_per_s": local["env_steps"] / local["seconds"],
                         "env_steps_per_cpu_s": local["env_steps"] / local["cpu_seconds"], "load": _load()}]
    base = None
    for workers in worker_counts:
        m = measure_workers(env_id, workers, popsize, generations)
        sps = m["env_steps"] / m["seconds"]
        base = base or sps  # worker_counts start at 1
        rows.append({"env": env_id, "workers": workers, "env_steps_per_s": sps, "efficiency": sps / (workers * base),
                     "idle_fraction": m["idle_fraction"], "worker_cpu_share": m["cpu_share"],
                     "env_steps_per_cpu_s": m["env_steps"] / m["cpu_seconds"], "bytes_sent": m["bytes_sent"],
                     "shards": m["shards"], "load": _load()})
        print(_table(cores).row(rows[-1]), flush=True)
    return rows


def _load() -> float:
    load = load_average()
    return float("nan") if load is None else load[0]


def main(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """Run the bench, print the table, write ``--out`` and ``--json`` if given; returns (rows, lines)."""
    counts = sorted({int(n) for n in args.workers.split(",")})
    if counts[0] != 1:
        raise ValueError("--workers must include 1: efficiency is measured against 1 worker")
    rows, lines = run(args.envs.split(","), counts, args.popsize, args.generations, args.niceness)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    if args.json:
        write_json(args.json, rows)
    return rows, lines

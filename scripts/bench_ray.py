"""Scaling of distributed evaluation on one machine: env steps per second of population evaluation on
Hopper-v5 and Humanoid-v5 (mujoco backend, one physics thread per worker) for 1, 2, 4, 8 and 16 Ray
workers (capped to the cores available), as efficiency against 1 worker x N, with the workers' idle
fraction and the bytes sent per generation. The in-process evaluator on all cores is the reference.

    .venv/bin/python scripts/bench_ray.py --out results/bench_ray.txt

The population is an ES population of linear policies around zero (sigma 0.1): random policies whose
episodes end at very different times, as early in training, which is where load balancing matters.
The machine's load average is printed with every row: other processes on the machine lower the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import neuroevo
from neuroevo.algorithms import ES
from neuroevo.distributed import RayEvaluator, connect
from neuroevo.policies import Linear


def _problem(env_id: str, popsize: int) -> tuple[Linear, ES]:
    env = neuroevo.make_env(env_id, 1, "cpu", num_threads=1)
    policy = Linear(env.obs_dim, env.single_action_space.shape[0])
    return policy, ES(policy.init_params(), popsize=popsize, sigma=0.1, seed=0)


def measure_local(env_id: str, popsize: int, generations: int, threads: int) -> dict:
    """The in-process evaluator: one env of P copies stepped on ``threads`` physics threads."""
    policy, es = _problem(env_id, popsize)
    params = es.ask()
    env = neuroevo.make_env(env_id, popsize, "cpu", num_threads=threads)
    neuroevo.evaluate(policy, params, env, seed=0)  # warm-up
    steps, start = 0, time.perf_counter()
    for generation in range(generations):
        steps += neuroevo.evaluate(policy, params, env, seed=generation + 1).env_steps
    return {"env_steps": steps, "seconds": time.perf_counter() - start}


def measure_workers(env_id: str, workers: int, popsize: int, generations: int) -> dict:
    """``workers`` Ray workers of one CPU and one physics thread each, the default shards."""
    policy, es = _problem(env_id, popsize)
    population = es.ask_population()  # the same population every generation, with fresh episode seeds
    with RayEvaluator(env_id, policy, workers, device="cpu", num_threads=1) as evaluator:
        evaluator.evaluate(population, seed=0, optimizer=es)  # warm-up: envs, noise table, replicas
        steps, idle, sent, start = 0, [], [], time.perf_counter()
        for generation in range(generations):
            steps += evaluator.evaluate(population, seed=generation + 1, optimizer=es).env_steps
            idle.append(evaluator.last_metrics["dist/idle_fraction"])
            sent.append(evaluator.last_metrics["dist/bytes_sent"])
        seconds = time.perf_counter() - start
    return {"env_steps": steps, "seconds": seconds, "idle_fraction": sum(idle) / len(idle),
            "bytes_sent": sum(sent) / len(sent), "shards": evaluator.last_metrics["dist/shards"]}


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run(envs: list[str], worker_counts: list[int], popsize: int, generations: int) -> tuple[list[dict], list[str]]:
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"command: .venv/bin/python scripts/bench_ray.py {' '.join(sys.argv[1:])}".rstrip(),
        f"machine: {cores} cores available ({_cpu_model()}), torch {torch.__version__}, "
        f"ray {__import__('ray').__version__}, {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"population: ES, linear policy, popsize {popsize}, 1 episode per member, {generations} timed generations "
        "after a warm-up; load = 1-minute load average after the row",
    ]
    skipped = [n for n in worker_counts if n > cores]
    if skipped:
        lines.append(f"not measured: {', '.join(map(str, skipped))} workers (more than the {cores} cores available)")
    worker_counts = [n for n in worker_counts if n <= cores]
    connect(num_cpus=cores)
    rows = []
    header = f"{'env':<12} {'evaluator':<22} {'env steps/s':>12} {'efficiency':>10} {'idle':>6} "
    header += f"{'bytes/gen':>10} {'load':>5}"
    lines += ["", header, "-" * len(header)]
    for env_id in envs:
        local = measure_local(env_id, popsize, generations, cores)
        local_sps = local["env_steps"] / local["seconds"]
        rows.append({"env": env_id, "workers": 0, "env_steps_per_s": local_sps, "load": os.getloadavg()[0]})
        lines.append(f"{env_id:<12} {f'in-process, {cores} threads':<22} {local_sps:>12.4g} {'':>10} {'':>6} {'':>10} "
                     f"{rows[-1]['load']:>5.2f}")
        base = None
        for workers in worker_counts:
            m = measure_workers(env_id, workers, popsize, generations)
            sps = m["env_steps"] / m["seconds"]
            base = base or sps  # worker_counts start at 1
            row = {"env": env_id, "workers": workers, "env_steps_per_s": sps, "efficiency": sps / (workers * base),
                   "idle_fraction": m["idle_fraction"], "bytes_sent": m["bytes_sent"], "shards": m["shards"],
                   "load": os.getloadavg()[0]}
            rows.append(row)
            lines.append(f"{env_id:<12} {f'{workers} Ray workers':<22} {sps:>12.4g} {row['efficiency']:>10.0%} "
                         f"{row['idle_fraction']:>6.0%} {row['bytes_sent']:>10.0f} {row['load']:>5.2f}")
            print(lines[-1], flush=True)
    lines += ["", "efficiency: env steps/s of N workers / (N x those of 1 worker); idle: share of the workers' time "
              "not spent evaluating shards (waiting for the driver, for the last shards, for Ray)"]
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="Hopper-v5,Humanoid-v5")
    parser.add_argument("--workers", default="1,2,4,8,16", help="worker counts, starting at 1")
    parser.add_argument("--popsize", type=int, default=128)
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--out", help="also write the table here")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.workers.split(",")})
    if counts[0] != 1:
        raise SystemExit("--workers must include 1: efficiency is measured against 1 worker")
    rows, lines = run(args.envs.split(","), counts, args.popsize, args.generations)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

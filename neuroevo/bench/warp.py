"""``neuroevo bench warp``: the warp backend's throughput beside its physics limit and beside the mujoco CPU
backend, in one run.

Meant for a GPU machine (``--device cuda``, the default where there is one); on the CPU it only checks
that everything runs (``--quick``): warp's CPU device is not a target, and its figures are not GPU figures.

Rows, for each task (``--env``):

- ``warp``: population evaluation, ``rollout.evaluate`` of P members (``--popsize``, default 1,024 /
  8,192 / 65,536), one real episode each, with early termination: a finished episode is masked, its steps
  stop counting, and the loop ends once every episode is over. Policies ``--policies`` (linear, and MLP(64,
  64) with tanh), members small random policies (every parameter N(0, 0.05^2), as ``neuroevo bench``'s
  Part 3), so episode lengths are mixed as in an early population. env steps/s = env steps of running
  episodes / wall time of one ``evaluate`` call (after a 16-step warm-up call), median over ``--repeats``.
- ``mujoco_warp physics``: the limit. The same P worlds of the same env, reset from the same seeds, and
  only the physics of an env step timed, ``frame_skip`` MuJoCo Warp steps of every world (one CUDA graph
  launch on a GPU), with zero controls, for at least ``--physics-seconds``: physics steps/s, and that
  rate / frame skip as env steps/s. Each ``warp`` row gives its % of the limit at its P; the issue's goal
  is >= 70%. Finished worlds are stepped with the batch (their state put back), so early termination
  itself costs the ``warp`` rows physics they cannot count.
- ``mujoco``: the CPU backend on this machine's cores (``--physics-threads``, default all), P =
  ``--mujoco-popsize`` (default 1,024 / 8,192), the same members and episodes.

Kernel compilation (warp's, the first time a task runs on a machine) and CUDA graph capture happen in the
env's construction and the warm-up, outside the timing (see :mod:`neuroevo.bench.common`).

    neuroevo bench warp --env Hopper-v5,HalfCheetah-v5,Ant-v5 --json results/bench_warp.json
    neuroevo bench warp --quick --device cpu     # a check that it runs, on the CPU
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
from typing import Any

import torch

from neuroevo.bench.common import (
    POLICIES,
    command_line,
    fmt_count,
    int_list,
    load_average,
    run_for,
    str_list,
    write_json,
)
from neuroevo.bench.mujoco_eval import bench_task_evaluation, random_population, task_policy
from neuroevo.envs import WARP_ENVS, make_env
from neuroevo.envs.mujoco.base import default_threads

DEFAULT_POPSIZES = (1024, 8192, 65536)
DEFAULT_MUJOCO_POPSIZES = (1024, 8192)
QUICK: dict[str, Any] = {"popsize": (16, 64), "mujoco_popsize": (16,), "max_steps": 40, "physics_seconds": 0.5}
TARGET_PERCENT = 70.0  # the goal: warp population evaluation >= 70% of the raw physics rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The warp bench's flags on ``parser``."""
    parser.add_argument("--env", type=str_list, default=("Hopper-v5",), help="MuJoCo -v5 ids (default: Hopper-v5)")
    parser.add_argument("--device", default=None, help="torch device of the warp rows (default: cuda if available)")
    parser.add_argument("--popsize", type=int_list, default=None, help="warp population sizes P (default: "
                        "1024,8192,65536)")
    parser.add_argument("--mujoco-popsize", type=int_list, default=None, help="mujoco backend P (default: "
                        "1024,8192; '' skips the mujoco rows)")
    parser.add_argument("--policies", type=str_list, default=POLICIES, help="linear and/or mlp")
    parser.add_argument("--max-steps", type=int, default=None, help="episode cap (default: the task's time limit)")
    parser.add_argument("--physics-threads", type=int, default=None, help="mujoco backend threads (default: all "
                        "cores)")
    parser.add_argument("--physics-seconds", type=float, default=None, help="timed physics per limit figure "
                        "(default: 3)")
    parser.add_argument("--repeats", type=int, default=1, help="timed evaluate calls per figure, median (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the members and of their episodes")
    parser.add_argument("--quick", action="store_true", help="small P and short episodes: a check that it runs")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of the flags with the defaults filled in: explicit flags > --quick > defaults."""
    unknown = [e for e in args.env if e not in WARP_ENVS]
    if unknown:
        raise ValueError(f"--env: unknown {', '.join(unknown)}; the warp backend has {', '.join(WARP_ENVS)}")
    args = argparse.Namespace(**vars(args))
    quick = args.quick
    args.popsize = args.popsize or (QUICK["popsize"] if quick else DEFAULT_POPSIZES)
    if args.mujoco_popsize is None:
        args.mujoco_popsize = QUICK["mujoco_popsize"] if quick else DEFAULT_MUJOCO_POPSIZES
    if args.max_steps is None and quick:
        args.max_steps = QUICK["max_steps"]
    if args.physics_seconds is None:
        args.physics_seconds = QUICK["physics_seconds"] if quick else 3.0
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return args


def bench_physics(env_id: str, popsize: int, device: torch.device, seed: int, min_seconds: float) -> dict[str, Any]:
    """Raw MuJoCo Warp rate: ``env.step_physics()`` of P worlds (reset from the episode seeds, zero controls)
    looped for at least ``min_seconds`` (after one untimed call)."""
    env: Any = make_env(env_id, popsize, device=device, backend="warp")  # a WarpVectorEnv
    graph = env.graph_captured
    try:
        env.reset(seed=seed)
        env.step_physics()
        calls, elapsed = run_for(env.step_physics, device, min_seconds)
    finally:
        env.close()
    env_steps_per_s = popsize * calls / elapsed
    return {
        "backend": "mujoco_warp physics",
        "device": str(device),
        "popsize": popsize,
        "frame_skip": env.task.frame_skip,
        "physics_steps_per_s": env_steps_per_s * env.task.frame_skip,
        "env_steps_per_s": env_steps_per_s,
        "graph": graph,
    }


def _evaluation(env_id: str, kind: str, popsize: int, backend: str, device: torch.device, args) -> dict[str, Any]:
    probe = make_env(env_id, 1, device="cpu", backend="mujoco", num_threads=1)  # the spaces, for the policy
    policy = task_policy(kind, probe)
    probe.close()
    params = random_population(policy, popsize, args.seed)
    settings = {"physics_threads": args.physics_threads or default_threads(), "repeats": args.repeats,
                "seed": args.seed, "max_steps": args.max_steps}
    row = bench_task_evaluation(env_id, policy, params, backend, device, settings)
    row["env_id"] = env_id
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The rows of every task (printed as they are measured), and the meta block; ``args`` resolved."""
    rows: list[dict[str, Any]] = []
    for env_id in args.env:
        limits = {}
        for popsize in args.popsize:
            limit = bench_physics(env_id, popsize, args.device, args.seed, args.physics_seconds)
            limits[popsize] = limit["env_steps_per_s"]
            rows.append({"env_id": env_id, **limit})
            _print_row(rows[-1])
            for kind in args.policies:
                row = _evaluation(env_id, kind, popsize, "warp", args.device, args)
                row["percent_of_physics_limit"] = 100.0 * row["env_steps_per_s"] / limits[popsize]
                rows.append(row)
                _print_row(row)
        for popsize in args.mujoco_popsize:
            for kind in args.policies:
                rows.append(_evaluation(env_id, kind, popsize, "mujoco", torch.device("cpu"), args))
                _print_row(rows[-1])
    return {"meta": _meta(args), "rows": rows}


def _print_row(row: dict[str, Any]) -> None:
    backend = row["backend"]
    what = f"{row['env_id']:<15} {backend:<20} {row['device']:<7} P={row['popsize']:<6}"
    if backend == "mujoco_warp physics":
        graph = "CUDA graph" if row["graph"] else "no graph"
        print(f"{what} {'':<7} physics steps/s {fmt_count(row['physics_steps_per_s']):>13}  "
              f"-> limit {fmt_count(row['env_steps_per_s']):>12} env steps/s (frame skip {row['frame_skip']}, {graph})")
        return
    extra = f"  {row['percent_of_physics_limit']:5.1f}% of the limit" if "percent_of_physics_limit" in row else ""
    if backend == "mujoco":
        extra = f"  on {row['workers']} threads"
    print(f"{what} {row['policy']:<7} env steps/s {fmt_count(row['env_steps_per_s']):>17}  "
          f"(mean episode {row['mean_episode_length']:.0f} steps){extra}", flush=True)


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    versions = {name: importlib.metadata.version(name) for name in ("torch", "mujoco", "mujoco-warp", "warp-lang")}
    device = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else platform.processor() or "cpu"
    return {
        "command": command_line(),
        "device": device,
        "cores": default_threads(),
        "load_average": load_average(),
        "versions": versions,
        "max_steps": args.max_steps,
        "repeats": args.repeats,
        "seed": args.seed,
        "target_percent_of_physics_limit": TARGET_PERCENT,
        "gpu_figures": args.device.type == "cuda",
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench (printing its rows), then the range against the goal; write ``--json`` if given.
    Returns the figures."""
    args = resolve(args)
    meta = _meta(args)
    print(f"warp backend on {meta['device']} ({args.device}); mujoco backend on {meta['cores']} cores; "
          f"load average {meta['load_average']}; {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}")
    if args.device.type != "cuda":
        print("note: warp on the CPU device: a check that the benchmark runs, not GPU figures")
    result = run(args)
    percents = [r["percent_of_physics_limit"] for r in result["rows"] if "percent_of_physics_limit" in r]
    if percents:
        print(f"warp population evaluation: {min(percents):.0f}-{max(percents):.0f}% of the raw physics rate "
              f"(goal >= {TARGET_PERCENT:.0f}%)")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return result

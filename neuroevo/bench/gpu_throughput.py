"""Parts 2, 3, 4 and 6 of the GPU check: throughput, each over the benchmark that measures it in ``neuroevo bench``.

- Part 2, ``cartpole``: CartPole-v1 population evaluation, env steps/s
  (:func:`neuroevo.bench.cartpole.bench_evaluation`: one real episode per member, early termination, a decent
  controller plus noise), linear policy, on the device at 16K to 1M envs eager, ``torch.compile``d and CUDA-graphed
  (:mod:`neuroevo.bench.graphed`), then the same on the machine's CPU (eager and compiled). Target: >= 1e9 env
  steps/s at 1M envs on the GPU.
- Part 3, ``forward``: the MLP(64, 64) member forward at P = 1K to 131K against the bandwidth the device achieves
  in the same run (:mod:`neuroevo.bench.forward`). Target: >= 70% of that bound.
- Part 4, ``warp``: MuJoCo Warp population evaluation at P = 1,024 / 8,192 / 65,536, linear and MLP(64, 64), real
  episodes with early termination, against the raw ``mujoco_warp`` physics rate / frame skip of the same P in the
  same run, and the ``mujoco`` backend on all the machine's cores (:mod:`neuroevo.bench.warp`). Target: >= 70%
  of the raw rate.
- Part 6, ``cpu``: the machine's cores: the MuJoCo CPU bench (:mod:`neuroevo.bench.mujoco_eval`) with one physics
  thread per core, and, where Ray is installed, scaling over 1 to N Ray workers (:mod:`neuroevo.bench.ray_workers`;
  goal: efficiency >= 0.80 at one worker per core).

Every part takes its sizes in order while their estimated cost fits in its share
(:class:`~neuroevo.bench.budget.Ladder`) and notes the sizes it skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
from typing import Any

import torch

from neuroevo.bench import cartpole, forward, mujoco_eval, ray_workers, warp
from neuroevo.bench.budget import Ladder, PartContext
from neuroevo.bench.common import POLICIES, timed_repeats
from neuroevo.bench.graphed import GraphedRollout
from neuroevo.envs import make_env
from neuroevo.envs.base import TorchVectorEnv
from neuroevo.envs.mujoco.base import default_threads
from neuroevo.rollout import evaluate

CPU = torch.device("cpu")
GPU_EXPONENT = 0.5  # the ladders' cost growth on a GPU (see Ladder)


def _repeats(ctx: PartContext) -> int:
    return 1 if ctx.quick else 3


def _within(ctx: PartContext, fraction: float) -> PartContext:
    """A view of ``ctx`` (same figures and notes) whose deadline leaves the rest of the time to what follows."""
    return dataclasses.replace(ctx, deadline=ctx.deadline - (1 - fraction) * max(ctx.left(), 0.0))


# -- Part 2: CartPole-v1 ------------------------------------------------------------------------------------------
CARTPOLE_ENVS = {"cuda": (1 << 20, 262144, 65536, 16384), "cpu": (16384, 65536, 262144)}  # the target size first
QUICK_CARTPOLE_ENVS = (64, 256)
COMPILE_S = {"cuda": 20.0, "cpu": 30.0}  # least time to start a compiled size: torch.compile's first call
CUDA_SHARE = 0.7  # of Part 2's time, for the device's rows; the rest for the CPU's
TARGET_STEPS_PER_S = cartpole.TARGET_STEPS_PER_S


def bench_graphed(num_envs: int, device: torch.device, repeats: int, seed: int) -> dict[str, Any]:
    """Env steps/s of a :class:`GraphedRollout` of ``num_envs`` linear members (one warm-up call, then the
    median of ``repeats``), and the largest gap between its returns and eager ``evaluate``'s."""
    policy = cartpole.make("linear")
    params = cartpole.population(policy, num_envs, device, seed)
    env = make_env(cartpole.ENV_ID, num_envs, device=device, backend="torch")
    assert isinstance(env, TorchVectorEnv)
    rollout = GraphedRollout(policy, params, env)
    rollout.run(seed)
    seconds, result = timed_repeats(lambda: rollout.run(seed), device, repeats)
    eager = evaluate(policy, params, make_env(cartpole.ENV_ID, num_envs, device=device, backend="torch"), seed=seed)
    return {
        "backend": "torch", "mode": "graphed", "device": str(device), "policy": policy.kind,
        "num_params": policy.num_params, "num_envs": num_envs, "popsize": num_envs, "env_steps": result.env_steps,
        "mean_episode_length": float(result.episode_lengths.float().mean()), "seconds": seconds,
        "env_steps_per_s": result.env_steps / seconds, "block": rollout.block,
        "max_return_diff_vs_eager": float((result.returns - eager.returns).abs().max()),
    }


def _cartpole_row(ctx: PartContext, device: torch.device, mode: str, num_envs: int) -> dict[str, Any] | None:
    def bench() -> dict[str, Any]:
        if mode == "graphed":
            return bench_graphed(num_envs, device, _repeats(ctx), ctx.seed)
        policy = cartpole.make("linear")
        return cartpole.bench_evaluation(policy, num_envs, device, "torch", _repeats(ctx), ctx.seed,
                                         compile=mode == "compiled")

    row = ctx.attempt(f"CartPole {mode} {device} {num_envs:,} envs", bench)
    return None if row is None else ctx.record("evaluation", row)


def run_cartpole(ctx: PartContext) -> dict[str, Any]:
    """Part 2's figures: ``evaluation`` rows (``neuroevo bench``'s, plus ``mode`` "graphed" on CUDA)."""
    plan: list[tuple[PartContext, torch.device, list[str]]] = []
    if ctx.cuda:
        plan.append((_within(ctx, CUDA_SHARE), ctx.device, ["eager", "graphed", "compiled"]))
    else:
        ctx.note("no CUDA device: the CUDA-graphed rows are skipped")
    cpu_modes = ["eager", "compiled"]
    if ctx.quick and not ctx.cuda:
        cpu_modes = ["eager"]
        ctx.note("--quick on the CPU: the compiled rows are skipped (compiling costs more than the check)")
    plan.append((ctx, CPU, cpu_modes))
    for share, device, modes in plan:
        sizes = QUICK_CARTPOLE_ENVS if ctx.quick else CARTPOLE_ENVS[device.type]
        for mode in modes:
            first_s = COMPILE_S[device.type] if mode == "compiled" and not ctx.quick else 0.0
            exponent = GPU_EXPONENT if device.type == "cuda" else 1.0
            ladder = Ladder(share, f"CartPole {mode} on {device}", exponent, first_s)
            for num_envs in ladder.over(sizes):
                _cartpole_row(share, device, mode, num_envs)
    return ctx.figures


def summary_cartpole(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The best env steps/s at the largest env count of each device, the GPU's against the 1e9 target."""
    rows = figures.get("evaluation", [])
    out = []
    for device in sorted({r["device"] for r in rows}, key=lambda d: d == "cpu"):
        mine = [r for r in rows if r["device"] == device]
        top = max(r["num_envs"] for r in mine)
        best = max((r for r in mine if r["num_envs"] == top), key=lambda r: r["env_steps_per_s"])
        at_target = device.startswith("cuda") and top == cartpole.TARGET_STEPS_ENVS
        target = f">= {TARGET_STEPS_PER_S:.0e}" if at_target else ""
        out.append({"figure": f"CartPole-v1 env steps/s, linear, {top:,} envs, {device} ({best['mode']})",
                    "value": f"{best['env_steps_per_s']:.3g}", "target": target,
                    "met": best["env_steps_per_s"] >= TARGET_STEPS_PER_S if at_target else None})
    return out


# -- Part 3: the member forward -----------------------------------------------------------------------------------
FORWARD_POPSIZES = (1024, 4096, 16384, 65536, 131072)
QUICK_FORWARD: dict[str, Any] = {"popsizes": (64, 256), "buffer_mib": 32, "min_repeat_s": 0.02}


def run_forward(ctx: PartContext) -> dict[str, Any]:
    """Part 3's figures: ``bandwidth`` (the device's bound) and ``forward`` rows, as ``neuroevo bench``'s Part 2."""
    device = ctx.device
    sizes: dict[str, Any] = QUICK_FORWARD if ctx.quick else {
        "popsizes": FORWARD_POPSIZES, "min_repeat_s": forward.MIN_REPEAT_S,
        "buffer_mib": forward.DEFAULT_BUFFER_MIB.get(device.type, 512)}
    min_s, repeats = sizes["min_repeat_s"], _repeats(ctx)
    bandwidth = ctx.attempt(f"{device} bandwidth", forward.bench_bandwidth, device, sizes["buffer_mib"], repeats, min_s)
    if bandwidth is None:
        return ctx.figures
    ctx.figures["bandwidth"] = bandwidth
    policy = cartpole.make("mlp")
    ladder = Ladder(ctx, f"MLP forward on {device}", GPU_EXPONENT if ctx.cuda else 1.0)
    for popsize in ladder.over(sizes["popsizes"]):
        row = ctx.attempt(f"MLP forward P={popsize:,}", forward.bench_forward, policy, popsize, 1, device, repeats,
                          ctx.seed, bandwidth["bound_gb_per_s"], min_s)
        if row is not None:
            ctx.record("forward", row)
    return ctx.figures


def summary_forward(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """% of the bandwidth bound at the largest P measured, against 70% on a GPU."""
    rows = figures.get("forward", [])
    if not rows:
        return []
    row = max(rows, key=lambda r: r["popsize"])
    gpu = row["device"].startswith("cuda")
    return [{"figure": f"MLP(64, 64) forward, P = {row['popsize']:,}, {row['device']}, % of "
                       f"{row['bound_gb_per_s']:.0f} GB/s",
             "value": f"{row['percent_of_bound']:.0f}%", "target": f">= {forward.TARGET_BOUND_PERCENT:.0f}%" if gpu
             else "", "met": row["percent_of_bound"] >= forward.TARGET_BOUND_PERCENT if gpu else None}]


# -- Part 4: MuJoCo Warp ------------------------------------------------------------------------------------------
WARP_TASKS = ("Hopper-v5", "HalfCheetah-v5")  # the second while time is left
WARP_POPSIZES = (1024, 8192, 65536)
MUJOCO_POPSIZE = 1024
QUICK_WARP: dict[str, Any] = {"popsizes": (4,), "mujoco_popsize": 4, "max_steps": 4, "physics_seconds": 0.05,
                              "tasks": ("Hopper-v5",)}
PHYSICS_SECONDS = 2.0  # timed physics per limit figure
CPU_FULL_SIZES = ("its full sizes need a CUDA device (warp's CPU device takes about 0.1 s per env step); --quick "
                  "runs it on the CPU")


def _task_evaluation(env_id: str, kind: str, popsize: int, backend: str, device: torch.device,
                     settings: dict[str, Any]) -> dict[str, Any]:
    probe = make_env(env_id, 1, device="cpu", backend="mujoco", num_threads=1)  # the spaces, for the policy
    policy = mujoco_eval.task_policy(kind, probe)
    probe.close()
    params = mujoco_eval.random_population(policy, popsize, settings["seed"])
    row = mujoco_eval.bench_task_evaluation(env_id, policy, params, backend, device, settings)
    return {"env_id": env_id, **row}


def _warp_task(ctx: PartContext, env_id: str, sizes: dict[str, Any], settings: dict[str, Any]) -> None:
    ladder = Ladder(ctx, f"warp {env_id} on {ctx.device}", GPU_EXPONENT if ctx.cuda else 1.0)
    for popsize in ladder.over(sizes["popsizes"]):
        limit = ctx.attempt(f"warp {env_id} physics P={popsize:,}", warp.bench_physics, env_id, popsize, ctx.device,
                            ctx.seed, sizes["physics_seconds"])
        if limit is None:
            continue
        ctx.record("rows", {"env_id": env_id, **limit})
        for kind in POLICIES:
            row = ctx.attempt(f"warp {env_id} {kind} P={popsize:,}", _task_evaluation, env_id, kind, popsize, "warp",
                              ctx.device, settings)
            if row is not None:
                row["percent_of_physics_limit"] = 100.0 * row["env_steps_per_s"] / limit["env_steps_per_s"]
                ctx.record("rows", row)
    if ctx.fits(0.0):
        for kind in POLICIES:
            row = ctx.attempt(f"mujoco {env_id} {kind}", _task_evaluation, env_id, kind, sizes["mujoco_popsize"],
                              "mujoco", CPU, settings)
            if row is not None:
                ctx.record("rows", row)


def warp_part_runs(ctx: PartContext, what: str) -> bool:
    """Whether a MuJoCo Warp part (4, 5) runs here: the warp extra installed, and a CUDA device or ``--quick``
    (warp's CPU device is too slow for full sizes); notes why not, or that CPU figures are ``what`` only."""
    try:
        from neuroevo.envs.warp import import_warp

        import_warp()
    except ValueError as err:
        ctx.note(f"skipped: {err}")
        return False
    if not ctx.cuda and not ctx.quick:
        ctx.note(f"skipped: {CPU_FULL_SIZES}")
        return False
    if not ctx.cuda:
        ctx.note(f"warp on the CPU device: {what}, not GPU figures")
    return True


def run_warp(ctx: PartContext) -> dict[str, Any]:
    """Part 4's figures: ``rows`` as ``neuroevo bench warp``'s (physics limit, warp and mujoco rows per task)."""
    if not warp_part_runs(ctx, "a check that the part runs"):
        return ctx.figures
    sizes: dict[str, Any] = QUICK_WARP if ctx.quick else {"popsizes": WARP_POPSIZES, "mujoco_popsize": MUJOCO_POPSIZE,
                                          "max_steps": None, "physics_seconds": PHYSICS_SECONDS, "tasks": WARP_TASKS}
    settings = {"physics_threads": default_threads(), "repeats": 1, "seed": ctx.seed, "max_steps": sizes["max_steps"]}
    ctx.figures["max_steps"] = sizes["max_steps"]
    ladder = Ladder(ctx, "warp tasks", exponent=0.0, label=lambda i: sizes["tasks"][i - 1])
    for i in ladder.over(range(1, len(sizes["tasks"]) + 1)):
        share = ctx if i == len(sizes["tasks"]) else _within(ctx, 0.75)
        _warp_task(share, sizes["tasks"][i - 1], sizes, settings)
    return ctx.figures


def summary_warp(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task, the range of the warp rows' % of the raw physics rate, against 70% on a GPU."""
    out = []
    rows = [r for r in figures.get("rows", []) if "percent_of_physics_limit" in r]
    for env_id in dict.fromkeys(r["env_id"] for r in rows):
        mine = [r for r in rows if r["env_id"] == env_id]
        low, high = min(mine, key=lambda r: r["percent_of_physics_limit"]), max(r["popsize"] for r in mine)
        gpu = mine[0]["device"].startswith("cuda")
        out.append({"figure": f"warp {env_id}, % of the raw physics rate (lowest; P <= {high:,}, {mine[0]['device']})",
                    "value": f"{low['percent_of_physics_limit']:.0f}%",
                    "target": f">= {warp.TARGET_PERCENT:.0f}%" if gpu else "",
                    "met": low["percent_of_physics_limit"] >= warp.TARGET_PERCENT if gpu else None,
                    "detail": f"lowest: {low['policy']} P={low['popsize']:,}"})
    return out


# -- Part 6: the machine's cores ----------------------------------------------------------------------------------
MUJOCO_TASKS = ("Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5")
RAY_WORKERS = (1, 2, 4, 8, 16)
RAY_ALL_COUNTS_S = 120.0  # least time left to measure every worker count, not only 1 and all cores
QUICK_CPU: dict[str, Any] = {"tasks": ("Hopper-v5",), "popsize": 2, "max_steps": 8, "ray_popsize": 8,
                             "ray_generations": 1}
MUJOCO_SHARE = 0.4  # of Part 6's time, for the MuJoCo CPU bench; the rest for Ray


def _mujoco_cpu(ctx: PartContext) -> None:
    quick = ctx.quick
    flags = argparse.Namespace(popsize=QUICK_CPU["popsize"] if quick else None,
                               max_steps=QUICK_CPU["max_steps"] if quick else None, physics_threads=None,
                               no_evotorch=True)
    settings = {**mujoco_eval.settings(flags, quick), "policies": list(POLICIES), "seed": ctx.seed,
                "repeats": _repeats(ctx)}
    tasks = QUICK_CPU["tasks"] if quick else MUJOCO_TASKS
    ladder = Ladder(ctx, "MuJoCo CPU bench tasks", exponent=0.0, label=lambda i: tasks[i - 1])
    for i in ladder.over(range(1, len(tasks) + 1)):
        one = {**settings, "mujoco_envs": [tasks[i - 1]]}
        task = ctx.attempt(f"mujoco CPU bench {tasks[i - 1]}", mujoco_eval.tasks, one, [CPU], ctx.notes)
        if task:
            ctx.record("mujoco", task[0])


def _ray(ctx: PartContext) -> None:
    if importlib.util.find_spec("ray") is None:
        ctx.note("ray: skipped, not installed (stage it: EXTRA=\"ray==...\" bash ../shared/gpu/fetch-wheels.sh)")
        return
    cores = len(os.sched_getaffinity(0))
    counts = [n for n in RAY_WORKERS if n < cores] + [cores]
    if ctx.quick or not ctx.fits(RAY_ALL_COUNTS_S):
        counts = sorted({1, cores})
    popsize, generations = (QUICK_CPU["ray_popsize"], QUICK_CPU["ray_generations"]) if ctx.quick else (512, 3)
    done = ctx.attempt("ray", ray_workers.run, ["Hopper-v5"], counts, popsize, generations, 0)
    for row in done[0] if done is not None else []:
        ctx.record("ray", row)


def run_cpu(ctx: PartContext) -> dict[str, Any]:
    """Part 6's figures: ``mujoco`` (as ``neuroevo bench --env``'s tasks) and ``ray`` (as ``neuroevo bench ray``'s
    rows), on all the machine's cores."""
    ctx.figures["cores"] = default_threads()
    _mujoco_cpu(_within(ctx, MUJOCO_SHARE))
    _ray(ctx)
    return ctx.figures


def summary_cpu(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The mujoco backend's % of the all-cores limit per task (goal 85%), Ray's efficiency at most workers (0.80)."""
    out = []
    for task in figures.get("mujoco", []):
        rows = [r for r in task["rows"] if r["backend"] == "mujoco"]
        if rows:
            low = min(rows, key=lambda r: r["percent_of_all_cores"])
            out.append({"figure": f"mujoco backend {task['env_id']}, % of the {task['cores']}-core physics limit "
                                  f"(lowest policy)", "value": f"{low['percent_of_all_cores']:.0f}%",
                        "target": f">= {mujoco_eval.TARGET_PHYSICS_PERCENT:.0f}%",
                        "met": low["percent_of_all_cores"] >= mujoco_eval.TARGET_PHYSICS_PERCENT})
    workers = [r for r in figures.get("ray", []) if r["workers"]]
    if workers:
        top = max(workers, key=lambda r: r["workers"])
        out.append({"figure": f"Ray scaling efficiency, {top['workers']} workers vs 1, Hopper-v5",
                    "value": f"{top['efficiency']:.2f}", "target": ">= 0.80", "met": top["efficiency"] >= 0.80})
    return out


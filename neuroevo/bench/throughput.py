"""``neuroevo bench``: throughput figures side by side, measured in one run (a benchmark, not a test).

Its parts, each documented in its module:

- Part 1 (:mod:`neuroevo.bench.cartpole`): population evaluation on CartPole-v1, env steps/s, the torch
  backend on each ``--device`` against gymnasium's vector env;
- Part 2 (:mod:`neuroevo.bench.forward`): the member forward of MLP(64, 64) against the memory bandwidth
  measured in the same run;
- Part 3 (:mod:`neuroevo.bench.mujoco_eval`), with ``--env`` MuJoCo tasks: population evaluation on our
  mujoco backend, gymnasium and EvoTorch against the physics limit.

``--env`` picks the parts: CartPole-v1 (the default) runs Parts 1 and 2, MuJoCo -v5 ids Part 3. How the
figures are timed: :mod:`neuroevo.bench.common`. Every figure is the median over ``--repeats``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from neuroevo.bench import cartpole, forward, mujoco_eval
from neuroevo.bench.common import POLICIES, device_name, int_list, load_average, pick, str_list, write_json
from neuroevo.envs import MUJOCO_ENVS

CARTPOLE_IDS = (cartpole.ENV_ID,)  # --env ids that select Parts 1 and 2
DEFAULT_REPEATS = 3
QUICK_REPEATS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's flags on ``parser`` (a subparser of the CLI, or a parser of its own)."""
    parser.add_argument(
        "--device",
        type=str_list,
        default=None,
        help="comma-separated torch devices (default: cpu,cuda, or cpu for Part 3 alone; cuda is skipped with a "
        "note if unavailable)",
    )
    parser.add_argument(
        "--envs",
        type=int_list,
        default=None,
        help="torch-backend env counts, every device (default: cpu 1024,16384; cuda 16384,131072,1048576)",
    )
    parser.add_argument(
        "--gym-envs",
        type=int_list,
        default=None,
        help="gymnasium reference env counts (default: 256; '' skips)",
    )
    parser.add_argument(
        "--policies", type=str_list, default=POLICIES, help="Part 1 and 3 policies (default: linear,mlp)"
    )
    parser.add_argument(
        "--modes",
        type=str_list,
        default=cartpole.MODES,
        help="torch-backend rollout modes: eager, compiled (torch.compile of the step) (default: both)",
    )
    parser.add_argument(
        "--popsizes",
        type=int_list,
        default=None,
        help="Part 2 MLP forward population sizes (default: 1024,16384,131072)",
    )
    parser.add_argument(
        "--obs-per-member", type=int, default=1, help="Part 2: observations E per member (default: 1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per figure, median reported (default: 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the params and the episodes")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads for the run (default: torch's own)"
    )
    parser.add_argument(
        "--env",
        type=str_list,
        default=None,
        help="comma-separated env ids: CartPole-v1 (Parts 1 and 2, the default) and/or MuJoCo -v5 tasks "
        "(Part 3), e.g. Hopper-v5,HalfCheetah-v5,Ant-v5,Humanoid-v5",
    )
    parser.add_argument(
        "--popsize",
        type=int_list,
        default=None,
        help="Part 3: comma-separated population sizes, one episode per member (default: "
        f"{','.join(map(str, mujoco_eval.POPSIZES))})",
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="Part 3: episode length cap (default: the task's time limit)"
    )
    parser.add_argument(
        "--physics-threads",
        type=int,
        default=None,
        help="Part 3: mujoco backend stepping threads and EvoTorch Ray actors (default: the cores available)",
    )
    parser.add_argument(
        "--no-evotorch", action="store_true", help="Part 3: skip the EvoTorch GymNE row even if it is installed"
    )
    parser.add_argument(
        "--no-envpool", action="store_true", help="Part 3: skip the EnvPool row even if it is installed"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and one repeat: a check that it runs"
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")


def _env_ids(args: argparse.Namespace) -> tuple[bool, list[str]]:
    """(run Parts 1 and 2?, the MuJoCo tasks of Part 3) from ``--env``; CartPole-v1 alone by default."""
    ids = list(dict.fromkeys(getattr(args, "env", None) or CARTPOLE_IDS))
    unknown = [i for i in ids if i not in CARTPOLE_IDS and i not in MUJOCO_ENVS]
    if unknown:
        raise ValueError(
            f"--env: unknown {', '.join(map(repr, unknown))}; choose {', '.join(CARTPOLE_IDS)} "
            f"or MuJoCo tasks: {', '.join(MUJOCO_ENVS)}"
        )
    return any(i in CARTPOLE_IDS for i in ids), [i for i in ids if i in MUJOCO_ENVS]


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flags resolved against the defaults: explicit flags > --quick > per-device defaults."""
    quick = bool(getattr(args, "quick", False))
    run_cartpole, mujoco_envs = _env_ids(args)
    # cuda is skipped, with a note, if absent; Part 3 alone stays on the CPU, where its physics runs
    default_devices = ["cpu", "cuda"] if run_cartpole else ["cpu"]
    devices = list(args.device) if args.device else default_devices
    repeats = pick(args.repeats, QUICK_REPEATS, DEFAULT_REPEATS, quick)
    if repeats < 1 or args.obs_per_member < 1 or (args.threads is not None and args.threads < 1):
        raise ValueError("--repeats, --obs-per-member and --threads must be >= 1")
    if set(args.modes) - set(cartpole.MODES) or not args.modes:
        raise ValueError(f"--modes takes a comma-separated subset of {', '.join(cartpole.MODES)}, got {args.modes}")
    unknown = set(args.policies) - set(POLICIES)
    if unknown:
        raise ValueError(f"unknown policies {sorted(unknown)}; choose from {', '.join(POLICIES)}")
    return {
        "devices": devices,
        "envs": args.envs,  # None: per device, see cartpole.envs_for
        "gym_envs": pick(args.gym_envs, cartpole.QUICK["gym_envs"], cartpole.DEFAULT_GYM_ENVS, quick),
        "policies": list(args.policies),
        "modes": list(args.modes),
        "popsizes": pick(args.popsizes, forward.QUICK["popsizes"], forward.DEFAULT_POPSIZES, quick),
        "obs_per_member": args.obs_per_member,
        "repeats": repeats,
        "threads": args.threads,
        "seed": args.seed,
        "quick": quick,
        "cartpole": run_cartpole,
        "mujoco_envs": mujoco_envs,
        **mujoco_eval.settings(args, quick),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The parts the flags select; the figures as plain data (see the parts' modules)."""
    settings = _settings(args)
    threads = torch.get_num_threads()
    if settings["threads"] is not None:
        torch.set_num_threads(settings["threads"])
    try:
        return _run(settings)
    finally:
        torch.set_num_threads(threads)


def _usable(device: torch.device, notes: list[str]) -> bool:
    if device.type == "cuda" and not torch.cuda.is_available():
        notes.append(f"{device}: skipped, torch.cuda.is_available() is False")
        return False
    return True


def _run(settings: dict[str, Any]) -> dict[str, Any]:
    notes: list[str] = []
    devices = [d for d in (torch.device(name) for name in settings["devices"]) if _usable(d, notes)]
    load = load_average()
    meta = {
        "env_id": cartpole.ENV_ID,
        "torch_version": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "load_average": None if load is None else load[0],
        "devices": [str(d) for d in devices],
        "device_names": {str(d): device_name(d) for d in devices},
        "repeats": settings["repeats"],
        "seed": settings["seed"],
        "quick": settings["quick"],
        "noise_std": cartpole.NOISE_STD,
    }
    if settings["mujoco_envs"]:
        meta.update(mujoco_eval.meta(settings))
    figures: dict[str, Any] = {"meta": meta}
    start = time.perf_counter()
    if settings["cartpole"]:
        figures["evaluation"] = cartpole.rows(settings, devices, notes)
        forward_rows, figures["bandwidth"] = forward.rows(settings, devices, notes)
        figures["forward"] = forward_rows
    if settings["mujoco_envs"]:
        figures["mujoco"] = mujoco_eval.tasks(settings, devices, notes)
    meta["wall_s"] = time.perf_counter() - start
    figures["notes"] = notes
    return figures


def format_report(figures: dict[str, Any]) -> str:
    """The figures of :func:`run` as a compact table, one line per configuration."""
    meta = figures["meta"]
    load = "n/a" if meta["load_average"] is None else f"{meta['load_average']:.2f}"
    names = "; ".join(f"{d}: {n}" for d, n in meta["device_names"].items())
    lines = [f"neuroevo bench, torch {meta['torch_version']} ({names}); load average {load}", ""]
    if "evaluation" in figures:
        lines += cartpole.report(figures) + [""] + forward.report(figures) + [""]
    if "mujoco" in figures:
        lines += mujoco_eval.report(figures) + [""]
    lines += [f"note: {n}" for n in figures["notes"]]
    lines.append(f"bench wall time {meta['wall_s']:.1f} s")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench, print the report, write ``--json PATH`` if given; returns the figures."""
    figures = run(args)
    print(format_report(figures), flush=True)
    if getattr(args, "json", None):
        write_json(args.json, figures)
    return figures

"""``neuroevo bench``: throughput figures side by side, measured in one run (a benchmark, not a test).

Part 1, population evaluation on CartPole-v1 (env steps/s). ``rollout.evaluate`` runs one real
episode per member (P = num_envs, E = 1) with early termination: a finished episode is masked and
its steps stop counting, and the loop stops once every episode is over. The members are a decent
controller plus noise, so episode lengths are mixed as in a population mid-training: the linear
policy's center pushes right iff ``theta + theta_dot > 0`` (it balances ~480 of 500 steps on
average); the MLP's center carries the same rule through one tanh unit per hidden layer, all other
weights zero; every member adds N(0, 0.05^2) noise to every parameter (drawn from ``--seed``, as
are the episode seeds). Backends: torch-native on each ``--device``, and gymnasium's
``SyncVectorEnv`` (``backend="gymnasium"``, numpy on the CPU) as the reference; the report prints
each configuration's mean episode length, since the work per episode depends on it. env steps/s =
env steps taken while episodes were running / wall time of one ``evaluate`` call (after a short
warm-up call).

Part 2, member forward of MLP(64, 64) on CartPole's dims (obs 4 -> act 2, D = 4,610). One call is
``policy(params [P, D], obs [P, E, 4])``; each call reads the P * D * 4 parameter bytes once, which
dominates its memory traffic at E = 1 (activations are ~130 floats per member against 4,610
parameters): its time is at least those bytes over the memory bandwidth, and it is judged against the
bandwidth that the same device achieves in the same run:

- ``sum``: ``buf.sum()`` over a float32 buffer (2 GiB on CUDA, 512 MiB on the CPU: far larger than
  any cache), counted as bytes read, the same access pattern as the forward's parameter reads;
- ``copy``: ``dst.copy_(src)`` between two such buffers, counted as bytes read + written.

The bound is the larger of the two, so the percentage is never flattered. A population that fits in
the last-level cache (P = 1,024 is 19 MB) can exceed 100%.

Part 3, ``--env TASK[,TASK...]`` (MuJoCo -v5 ids; replaces Parts 1 and 2 unless CartPole-v1 is listed
too): population evaluation of P = ``--popsize`` members, one episode each, against the physics limit.
The members are small random policies, params ~ N(0, NOISE_STD^2) (linear, and MLP(64, 64) with tanh),
so episode lengths vary as in an early population (Humanoid falls within ~25 steps, HalfCheetah never
terminates). The same members are evaluated by

- ``mujoco``: our backend, ``rollout.evaluate`` on ``--physics-threads`` stepping threads (each ``--device``);
- ``gymnasium``: the same ``evaluate`` through gymnasium's ``SyncVectorEnv`` (one core);
- ``evotorch``: EvoTorch's ``GymNE`` (if installed) evaluating a ``SolutionBatch`` of the same members
  (translated to ``nn.Linear``'s layout, checked to compute the same actions), on ``--physics-threads``
  Ray actors (in-process for 1); its env steps are its ``interaction_count``.

The physics limit is measured in the same run on the same episodes: the members are replayed
PHYSICS_ENVS at a time from their evaluation seeds on one thread (until PHYSICS_MIN_S seconds of timed
physics per repeat, cycling through the population), and before every env step each running
env's ``mj_step(model, data, nstep=frame_skip)`` is repeated on a copy of its ``MjData`` with the same
controls, alone under the clock (the copy, the policy and the env's own step are outside it). That gives
raw physics steps/s on one core for exactly the states the evaluation visits (this matters: a Humanoid
lying on the floor costs twice as much per step as one standing, and evaluated Humanoids rarely get to
lie down). The limit is that rate / frame skip env steps/s on one core, times the cores available for all
of them. It covers ``mj_step`` only; the envs also run ``mj_rnePostConstraint`` each step, as gymnasium
does. Each row reports its % of both limits; the issue's goal is ``mujoco`` >= 85% of the all-cores limit
(TARGET_PHYSICS_PERCENT; gymnasium reaches ~50% and EvoTorch ~43% of the one-core limit). Each backend
seeds its own initial states (EvoTorch draws them unseeded), so mean episode lengths differ slightly.

Timing: ``time.perf_counter()`` around the measured calls, with ``torch.cuda.synchronize()`` before
and after on CUDA; every figure is the median over ``--repeats`` repeats. A repeat of Part 2 or of a
bandwidth measurement loops the call for at least ``MIN_REPEAT_S`` seconds, calibrated by a warm-up.
Figures on a shared machine vary with its load: the report prints the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from neuroevo.envs import MUJOCO_ENVS, VectorEnv, make_env
from neuroevo.envs.mujoco import TASKS as MUJOCO_TASKS
from neuroevo.envs.mujoco.base import MujocoVectorEnv, default_threads, import_mujoco
from neuroevo.policies import Policy, make_policy, output_dim

ENV_ID = "CartPole-v1"
OBS_DIM, ACT_DIM = 4, 2
HIDDEN = (64, 64)
POLICIES = ("linear", "mlp")
MODES = ("eager", "compiled")
NOISE_STD = 0.05  # Part 1: per-parameter N(0, NOISE_STD^2) around the controller
# Part 1 controller: push right iff GAINS . obs > 0, obs = [x, x_dot, theta, theta_dot].
GAINS = (0.0, 0.0, 1.0, 1.0)
# MLP center: hidden unit 0 of layer 1 is tanh(IN_GAIN * GAINS . obs), later ones tanh(HIDDEN_GAIN * unit 0).
IN_GAIN, HIDDEN_GAIN = 10.0, 3.0
WARMUP_STEPS = 16  # Part 1 warm-up: one short evaluate (kernels, allocator, thread pools)
MIN_REPEAT_S = 0.2  # Part 2 / bandwidth: each repeat loops the call for at least this long

# The targets on an H100, printed beside the CUDA figures only.
TARGET_STEPS_PER_S = 1e9  # CartPole-v1, linear policy, 1M envs
TARGET_STEPS_ENVS = 1 << 20
TARGET_BOUND_PERCENT = 70.0  # MLP forward, % of the bandwidth bound

# Per-device defaults; --quick replaces them with small sizes, explicit flags replace both.
DEFAULT_ENVS = {"cpu": (1024, 16384), "cuda": (16384, 131072, 1 << 20)}
DEFAULT_GYM_ENVS = (256,)
DEFAULT_POPSIZES = (1024, 16384, 131072)
DEFAULT_BUFFER_MIB = {"cpu": 512, "cuda": 2048}
QUICK = {
    "envs": (64, 256),
    "gym_envs": (16,),
    "popsizes": (256, 1024),
    "buffer_mib": 32,
    "repeats": 1,
    "min_repeat_s": 0.02,
}
DEFAULT_REPEATS = 3

# Part 3 (MuJoCo)
CARTPOLE_IDS = (ENV_ID,)  # --env ids that select Parts 1 and 2
MUJOCO_POPSIZE = 64  # members P, one episode each, for every backend
MUJOCO_QUICK = {"popsize": 4, "max_steps": 50, "physics_min_s": 0.05}
PHYSICS_ENVS = 8  # members replayed side by side (on one thread) while the physics is timed
PHYSICS_MIN_S = 1.0  # each repeat of the physics limit times at least this much mj_step
TARGET_PHYSICS_PERCENT = 85.0  # the goal for the mujoco backend, % of the all-cores limit


# -- arguments ---------------------------------------------------------------------------------------


def _int_list(text: str) -> tuple[int, ...]:
    """'1024,16_384' -> (1024, 16384); an empty string is an empty list (skip that part)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's flags on ``parser`` (a subparser of the CLI, or a parser of its own)."""
    parser.add_argument(
        "--device",
        type=_str_list,
        default=None,
        help="comma-separated torch devices (default: cpu,cuda, or cpu for Part 3 alone; cuda is skipped with a "
        "note if unavailable)",
    )
    parser.add_argument(
        "--envs",
        type=_int_list,
        default=None,
        help="torch-backend env counts, every device (default: cpu 1024,16384; cuda 16384,131072,1048576)",
    )
    parser.add_argument(
        "--gym-envs",
        type=_int_list,
        default=None,
        help="gymnasium reference env counts (default: 256; '' skips)",
    )
    parser.add_argument(
        "--policies", type=_str_list, default=POLICIES, help="Part 1 and 3 policies (default: linear,mlp)"
    )
    parser.add_argument(
        "--modes",
        type=_str_list,
        default=MODES,
        help="torch-backend rollout modes: eager, compiled (torch.compile of the step) (default: both)",
    )
    parser.add_argument(
        "--popsizes",
        type=_int_list,
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
        type=_str_list,
        default=None,
        help="comma-separated env ids: CartPole-v1 (Parts 1 and 2, the default) and/or MuJoCo -v5 tasks "
        "(Part 3), e.g. Hopper-v5,HalfCheetah-v5,Ant-v5,Humanoid-v5",
    )
    parser.add_argument(
        "--popsize", type=int, default=None, help=f"Part 3: members, one episode each (default: {MUJOCO_POPSIZE})"
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
        "--quick", action="store_true", help="small sizes and one repeat: a check that it runs"
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")


def _pick(explicit: Any, quick_value: Any, default: Any, quick: bool) -> Any:
    """An explicit flag wins, then the --quick value, then the default."""
    if explicit is not None:
        return explicit
    return quick_value if quick else default


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


def _mujoco_settings(args: argparse.Namespace, quick: bool) -> dict[str, Any]:
    """Part 3's flags resolved: explicit flags > --quick > defaults."""
    popsize = _pick(getattr(args, "popsize", None), MUJOCO_QUICK["popsize"], MUJOCO_POPSIZE, quick)
    max_steps = _pick(getattr(args, "max_steps", None), MUJOCO_QUICK["max_steps"], None, quick)
    threads = getattr(args, "physics_threads", None)
    if popsize < 1 or (max_steps is not None and max_steps < 1) or (threads is not None and threads < 1):
        raise ValueError("--popsize, --max-steps and --physics-threads must be >= 1")
    return {
        "popsize": popsize,
        "max_steps": max_steps,
        "physics_threads": threads or default_threads(),
        "cores": default_threads(),
        "physics_min_s": MUJOCO_QUICK["physics_min_s"] if quick else PHYSICS_MIN_S,
        "evotorch": not getattr(args, "no_evotorch", False),
    }


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flags resolved against the defaults: explicit flags > --quick > per-device defaults."""
    quick = bool(getattr(args, "quick", False))
    cartpole, mujoco_envs = _env_ids(args)
    # cuda is skipped, with a note, if absent; Part 3 alone stays on the CPU, where its physics runs
    default_devices = ["cpu", "cuda"] if cartpole else ["cpu"]
    devices = list(args.device) if args.device else default_devices
    repeats = _pick(args.repeats, QUICK["repeats"], DEFAULT_REPEATS, quick)
    if repeats < 1 or args.obs_per_member < 1 or (args.threads is not None and args.threads < 1):
        raise ValueError("--repeats, --obs-per-member and --threads must be >= 1")
    if set(args.modes) - set(MODES) or not args.modes:
        raise ValueError(f"--modes takes a comma-separated subset of {', '.join(MODES)}, got {args.modes}")
    unknown = set(args.policies) - set(POLICIES)
    if unknown:
        raise ValueError(f"unknown policies {sorted(unknown)}; choose from {', '.join(POLICIES)}")
    return {
        "devices": devices,
        "envs": args.envs,  # None: per device, see _envs_for
        "gym_envs": _pick(args.gym_envs, QUICK["gym_envs"], DEFAULT_GYM_ENVS, quick),
        "policies": list(args.policies),
        "modes": list(args.modes),
        "popsizes": _pick(args.popsizes, QUICK["popsizes"], DEFAULT_POPSIZES, quick),
        "obs_per_member": args.obs_per_member,
        "repeats": repeats,
        "min_repeat_s": QUICK["min_repeat_s"] if quick else MIN_REPEAT_S,
        "threads": args.threads,
        "seed": args.seed,
        "quick": quick,
        "cartpole": cartpole,
        "mujoco_envs": mujoco_envs,
        **_mujoco_settings(args, quick),
    }


def _envs_for(settings: dict[str, Any], device: torch.device) -> tuple[int, ...]:
    if settings["envs"] is not None:
        return settings["envs"]
    if settings["quick"]:
        return QUICK["envs"]
    return DEFAULT_ENVS.get(device.type, DEFAULT_ENVS["cpu"])


# -- timing ------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds of one ``fn()`` call (synchronized on CUDA), and what it returned."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def _seconds_per_call(fn: Callable[[], Any], device: torch.device, repeats: int, min_s: float) -> float:
    """Median over ``repeats`` of the mean seconds per call, each repeat looping ``fn`` >= ``min_s``."""
    fn()  # first call: lazy initialization
    calls, elapsed = 0, 0.0
    _sync(device)
    start = time.perf_counter()
    while elapsed < min_s or calls < 2:  # the warm-up also calibrates the calls per repeat
        fn()
        calls += 1
        _sync(device)
        elapsed = time.perf_counter() - start
    per_repeat = max(1, math.ceil(min_s / (elapsed / calls)))

    def loop() -> None:
        for _ in range(per_repeat):
            fn()

    return statistics.median(_timed(loop, device)[0] / per_repeat for _ in range(repeats))


# -- Part 1: population evaluation -------------------------------------------------------------------


def controller_params(policy: Policy, device=None) -> torch.Tensor:
    """The decent CartPole controller as one member of ``policy`` (linear or MLP): [D].

    Written in the flat layout that both policies document: layer by layer, W [in, out] row-major,
    then b [out]. With s = GAINS . obs, the linear policy's logits are (-s, s); the MLP carries s
    through unit 0 of each hidden layer (tanh(IN_GAIN * s), then tanh(HIDDEN_GAIN * unit 0)) to
    logits (-unit 0, unit 0). Either way argmax pushes right iff s > 0. All other weights are zero.
    """
    sizes = [policy.obs_dim, *getattr(policy, "hidden", ()), policy.act_dim]
    flat, offset = torch.zeros(policy.num_params), 0
    last = len(sizes) - 2
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        W = flat[offset : offset + fan_in * fan_out].view(fan_in, fan_out)
        carrier = torch.tensor(GAINS) if i == 0 else torch.ones(1)  # the input rows that carry s
        if i == last:
            W[: len(carrier), 0], W[: len(carrier), 1] = -carrier, carrier
        else:
            W[: len(carrier), 0] = carrier * (IN_GAIN if i == 0 else HIDDEN_GAIN)
        offset += fan_in * fan_out + fan_out
    if offset != policy.num_params:
        raise ValueError(f"{policy!r}: flat layout of {offset} params, expected {policy.num_params}")
    return flat.to(device)


def _population(policy: Policy, popsize: int, device: torch.device, seed: int) -> torch.Tensor:
    """params [P, D] on ``device``: the controller plus N(0, NOISE_STD^2) per parameter."""
    generator = torch.Generator(device=device).manual_seed(seed)
    params = torch.empty(popsize, policy.num_params, device=device)
    params.normal_(0.0, NOISE_STD, generator=generator)
    return params.add_(controller_params(policy, device))


def _time_evaluate(
    policy: Policy, params: torch.Tensor, env: VectorEnv, repeats: int, seed: int, **kwargs: Any
) -> tuple[float, Any]:
    """Median seconds of one ``rollout.evaluate(policy, params, env, seed=seed, **kwargs)`` call over
    ``repeats`` (after a WARMUP_STEPS-step warm-up call), and the first timed call's ``Evaluation``.
    Closes ``env``. With a seed, every call runs the same episodes."""
    from neuroevo.rollout import evaluate

    run = partial(evaluate, policy, params, env, seed=seed, **kwargs)
    try:
        run(max_steps=WARMUP_STEPS)
        runs = [_timed(run, env.device) for _ in range(repeats)]
    finally:
        env.close()
    return statistics.median(t for t, _ in runs), runs[0][1]


def bench_evaluation(
    policy: Policy, num_envs: int, device: torch.device, backend: str, repeats: int, seed: int,
    compile: bool = False,
) -> dict[str, Any]:
    """Env steps/s of ``rollout.evaluate`` with P = num_envs members, one episode each (``compile``:
    the step through ``torch.compile``; its compilation happens in the warm-up, outside the timing)."""
    params = _population(policy, num_envs, device, seed)
    env = make_env(ENV_ID, num_envs, device=device, backend=backend)
    seconds, result = _time_evaluate(policy, params, env, repeats, seed, compile=compile)
    return {
        "backend": backend,
        "mode": "compiled" if compile else "eager",
        "device": str(device),
        "policy": policy.kind,
        "num_params": policy.num_params,
        "num_envs": num_envs,
        "popsize": num_envs,
        "env_steps": result.env_steps,
        "mean_episode_length": float(result.episode_lengths.float().mean()),
        "seconds": seconds,
        "env_steps_per_s": result.env_steps / seconds,
    }


# -- Part 2: member forward against memory bandwidth -------------------------------------------------


def bench_bandwidth(device: torch.device, mib: int, repeats: int, min_s: float) -> dict[str, Any]:
    """Achievable memory bandwidth of ``device`` in GB/s (1e9 bytes/s): a read-only sum and a copy."""
    numel = mib * 2**20 // 4
    src = torch.ones(numel, device=device)
    dst = torch.empty_like(src)
    nbytes = numel * 4
    sum_s = _seconds_per_call(src.sum, device, repeats, min_s)
    copy_s = _seconds_per_call(lambda: dst.copy_(src), device, repeats, min_s)
    sum_gbs, copy_gbs = nbytes / sum_s / 1e9, 2 * nbytes / copy_s / 1e9
    return {
        "device": str(device),
        "buffer_bytes": nbytes,
        "sum_gb_per_s": sum_gbs,
        "copy_gb_per_s": copy_gbs,
        "bound_gb_per_s": max(sum_gbs, copy_gbs),
    }


def bench_forward(
    policy: Policy,
    popsize: int,
    obs_per_member: int,
    device: torch.device,
    repeats: int,
    seed: int,
    bound: float,
    min_s: float,
) -> dict[str, Any]:
    """Members/s and parameter GB/s of one batched ``policy(params, obs)`` call, and % of ``bound``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    # The values do not change the time; uniform draws are the cheapest to fill GBs with.
    params = torch.empty(popsize, policy.num_params, device=device).uniform_(-0.1, 0.1, generator=generator)
    obs = torch.empty(popsize, obs_per_member, policy.obs_dim, device=device).uniform_(
        -0.1, 0.1, generator=generator
    )
    with torch.inference_mode():
        seconds = _seconds_per_call(lambda: policy(params, obs), device, repeats, min_s)
    param_gbs = popsize * policy.num_params * params.element_size() / seconds / 1e9
    return {
        "device": str(device),
        "policy": f"mlp{list(HIDDEN)}",
        "popsize": popsize,
        "obs_per_member": obs_per_member,
        "num_params": policy.num_params,
        "seconds_per_call": seconds,
        "members_per_s": popsize / seconds,
        "param_gb_per_s": param_gbs,
        "bound_gb_per_s": bound,
        "percent_of_bound": 100.0 * param_gbs / bound,
    }


# -- Part 3: MuJoCo population evaluation against the physics limit ---------------------------------


def task_policy(kind: str, env: VectorEnv) -> Policy:
    """Part 3's ``kind`` policy ("linear", or "mlp": MLP(64, 64) with tanh) for ``env``'s spaces."""
    act_dim = output_dim(env.single_action_space)
    if kind == "mlp":
        return make_policy("mlp", env.obs_dim, act_dim, hidden=list(HIDDEN), activation="tanh")
    return make_policy(kind, env.obs_dim, act_dim)


def random_population(policy: Policy, popsize: int, seed: int) -> torch.Tensor:
    """params [P, D] on the CPU, every entry N(0, NOISE_STD^2) drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.empty(popsize, policy.num_params).normal_(0.0, NOISE_STD, generator=generator)


class PhysicsClock(VectorEnv):
    """A mujoco-backend env whose physics is also timed alone: before each step, every running env's
    ``mj_step(model, data, nstep=frame_skip)`` runs on a copy of its ``MjData`` with the controls it is
    about to get, under the clock; then the env steps as usual. The copy carries the whole state
    (warm-start included), so the timed call does exactly the work of the env's own call.

    ``seconds``: time inside the timed calls; ``physics_steps``: physics steps they took.
    """

    def __init__(self, env: MujocoVectorEnv):
        self.env = env
        self.num_envs, self.device, self.spec_id = env.num_envs, env.device, env.spec_id
        self.max_episode_steps = env.max_episode_steps
        self._init_spaces(env.single_observation_space, env.single_action_space)
        self._mujoco = import_mujoco()
        self._copy = self._mujoco.MjData(env.model)
        self._running = np.zeros(env.num_envs, dtype=bool)
        self.seconds, self.physics_steps = 0.0, 0

    def reset(self, *, seed=None, options=None):
        mask = (options or {}).get("reset_mask")
        self._running |= np.ones(self.num_envs, bool) if mask is None else np.asarray(torch.as_tensor(mask).cpu())
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        mujoco, model, copy, skip = self._mujoco, self.env.model, self._copy, self.env.task.frame_skip
        ctrl = torch.as_tensor(actions).detach().cpu().numpy().astype(np.float64)
        ctrl = np.where(np.isfinite(ctrl), ctrl, 0.0)  # as the env does
        for i in np.flatnonzero(self._running):
            mujoco.mj_copyData(copy, model, self.env.datas[i])
            copy.ctrl[:] = ctrl[i]
            start = time.perf_counter()
            mujoco.mj_step(model, copy, nstep=skip)
            self.seconds += time.perf_counter() - start
            self.physics_steps += skip
        out = self.env.step(actions)
        self._running &= ~(out[2] | out[3]).cpu().numpy()
        return out

    def close(self) -> None:
        self.env.close()


def bench_physics(
    env_id: str, policy: Policy, params: torch.Tensor, seed: int, max_steps: int | None, repeats: int, min_s: float
) -> dict[str, Any]:
    """Raw physics steps/s on one core over the evaluation's own episodes (see :class:`PhysicsClock`).

    Members of ``params`` [P, D] are replayed PHYSICS_ENVS at a time on one thread, member p from its
    evaluation seed (``rollout.episode_seeds(seed, P, 1)``), cycling through the population until the
    timed physics reaches ``min_s``; the median over ``repeats``.
    """
    from neuroevo.rollout import episode_seeds, evaluate

    popsize = params.shape[0]
    batch = min(PHYSICS_ENVS, popsize)
    seeds = episode_seeds(seed, popsize, 1)
    clock = PhysicsClock(make_env(env_id, batch, device="cpu", backend="mujoco", num_threads=1))
    rates, first = [], 0
    try:
        for _ in range(repeats):
            clock.seconds, clock.physics_steps = 0.0, 0
            while clock.seconds < min_s:
                members = (first + torch.arange(batch)) % popsize
                first += batch
                evaluate(policy, params[members], clock, seed=seeds[members], max_steps=max_steps)
            rates.append(clock.physics_steps / clock.seconds)
    finally:
        clock.close()
    return {"physics_steps_per_s": statistics.median(rates), "frame_skip": clock.env.task.frame_skip}


def bench_task_evaluation(
    env_id: str, policy: Policy, params: torch.Tensor, backend: str, device: torch.device, settings: dict[str, Any]
) -> dict[str, Any]:
    """Env steps/s of ``rollout.evaluate`` of ``params`` [P, D] on ``env_id`` through ``backend`` ("mujoco"
    on ``physics_threads`` threads, or "gymnasium"), one episode per member."""
    popsize = params.shape[0]
    workers = settings["physics_threads"] if backend == "mujoco" else 1
    env = make_env(env_id, popsize, device=device, backend=backend, num_threads=workers)
    seconds, result = _time_evaluate(
        policy, params.to(device), env, settings["repeats"], settings["seed"], max_steps=settings["max_steps"]
    )
    return {
        "backend": backend,
        "device": str(device),
        "policy": policy.kind,
        "workers": workers,
        "popsize": popsize,
        "env_steps": result.env_steps,
        "mean_episode_length": float(result.episode_lengths.float().mean()),
        "seconds": seconds,
        "env_steps_per_s": result.env_steps / seconds,
    }


def evotorch_network(policy: Policy) -> str:
    """``policy``'s architecture as an EvoTorch network string, e.g. "Linear(obs_length, act_length)"."""
    sizes = ["obs_length", *map(str, getattr(policy, "hidden", ())), "act_length"]
    return " >> Tanh() >> ".join(f"Linear({a}, {b})" for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def module_layout(policy: Policy, params: torch.Tensor) -> torch.Tensor:
    """params [P, D] in our flat layout -> [P, D] in the order of the parameters of ``policy.to_module``
    (``nn.Linear``'s weight [out, in], then bias, layer by layer), the order EvoTorch fills them in.
    A loop over members: this runs once per bench row, not on a hot path."""
    return torch.stack([parameters_to_vector(policy.to_module(member).parameters()) for member in params])


def _check_same_policy(problem: Any, policy: Policy, params: torch.Tensor, values: torch.Tensor) -> None:
    """Raise unless EvoTorch's network filled with ``values[0]`` computes ``policy`` with ``params[0]``."""
    obs = torch.randn(policy.obs_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = problem.make_net(values[0])(obs)
    ours = policy(params[:1], obs[None, None])[0, 0]
    if not torch.allclose(theirs, ours, atol=1e-5):
        raise RuntimeError(f"EvoTorch's {evotorch_network(policy)!r} does not compute our {policy.kind} policy")


def bench_evotorch(
    env_id: str, policy: Policy, params: torch.Tensor, actors: int, max_steps: int | None, repeats: int
) -> dict[str, Any]:
    """Env steps/s of EvoTorch's ``GymNE`` evaluating the members ``params`` [P, D], one episode each,
    on ``actors`` Ray actors (in this process for 1). A warm-up evaluation of one member per actor
    starts the actors; each timed repeat evaluates the whole ``SolutionBatch``, and its env steps are the
    growth of the problem's ``interaction_count``. The episodes are GymNE's own (unseeded), so the
    median is taken over the repeats' rates. Ray, when it is not running yet, is started by EvoTorch."""
    from evotorch.neuroevolution import GymNE

    popsize = params.shape[0]
    # Ray offers os.cpu_count() CPUs and gives each actor one: more actors than that would wait forever.
    actors = min(actors, popsize, os.cpu_count() or 1)
    problem = GymNE(
        env=env_id,
        network=evotorch_network(policy),
        num_actors=actors if actors > 1 else None,
        observation_normalization=False,
        episode_length=max_steps,
    )
    values = module_layout(policy, params)
    runs, actors_started = [], False
    try:
        _check_same_policy(problem, policy, params, values)
        warmup = problem.generate_batch(actors)
        warmup.set_values(values[:actors])
        actors_started = actors > 1
        problem.evaluate(warmup)
        batch = problem.generate_batch(popsize)
        batch.set_values(values)
        for _ in range(repeats):
            steps, episodes = problem.interaction_count, problem.episode_count
            seconds, _ = _timed(partial(problem.evaluate, batch), torch.device("cpu"))
            runs.append((problem.interaction_count - steps, problem.episode_count - episodes, seconds))
    finally:
        if actors_started:
            problem.kill_actors()
    steps, episodes, seconds = (sum(r[i] for r in runs) for i in range(3))
    return {
        "backend": "evotorch",
        "device": "cpu",
        "policy": policy.kind,
        "workers": actors,
        "popsize": popsize,
        "env_steps": runs[0][0],
        "mean_episode_length": steps / episodes,
        "seconds": statistics.median(r[2] for r in runs),
        "env_steps_per_s": statistics.median(r[0] / r[2] for r in runs),
    }


def _evotorch_usable(settings: dict[str, Any], notes: list[str]) -> bool:
    if not settings["evotorch"]:
        return False
    if importlib.util.find_spec("evotorch") is None:
        notes.append("evotorch: row skipped, not installed (pip install evotorch)")
        return False
    return True


def _task_rows(
    env_id: str, kind: str, settings: dict[str, Any], devices: list[torch.device], evotorch: bool, notes: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the physics limit, the rows) of one task and policy; every row carries its % of both limits."""
    probe = make_env(env_id, 1, device="cpu", backend="mujoco", num_threads=1)
    policy = task_policy(kind, probe)
    probe.close()
    params = random_population(policy, settings["popsize"], settings["seed"])
    physics = bench_physics(
        env_id, policy, params, settings["seed"], settings["max_steps"], settings["repeats"], settings["physics_min_s"]
    )
    one_core = physics["physics_steps_per_s"] / physics["frame_skip"]
    limit = {
        **physics,
        "policy": kind,
        "cores": settings["cores"],
        "one_core_env_steps_per_s": one_core,
        "all_cores_env_steps_per_s": one_core * settings["cores"],
    }
    runs = [("mujoco", d) for d in devices] + [("gymnasium", torch.device("cpu"))]
    rows = [bench_task_evaluation(env_id, policy, params, b, d, settings) for b, d in runs]
    if evotorch:
        try:
            rows.append(
                bench_evotorch(
                    env_id, policy, params, settings["physics_threads"], settings["max_steps"], settings["repeats"]
                )
            )
        except Exception as err:  # a third party's failure (Ray, its env) must not end the bench
            notes.append(f"evotorch {env_id} {kind}: row skipped, {type(err).__name__}: {err}")
    for row in rows:
        row["percent_of_one_core"] = 100.0 * row["env_steps_per_s"] / limit["one_core_env_steps_per_s"]
        row["percent_of_all_cores"] = 100.0 * row["env_steps_per_s"] / limit["all_cores_env_steps_per_s"]
    return limit, rows


def _part3(settings: dict[str, Any], devices: list[torch.device], notes: list[str]) -> list[dict[str, Any]]:
    evotorch = _evotorch_usable(settings, notes)
    ray = importlib.import_module("ray") if evotorch and settings["physics_threads"] > 1 else None
    started_ray = ray is not None and not ray.is_initialized()  # EvoTorch starts it once, for every row
    try:
        return _part3_tasks(settings, devices, evotorch, notes)
    finally:
        if started_ray and ray.is_initialized():
            ray.shutdown()


def _part3_tasks(
    settings: dict[str, Any], devices: list[torch.device], evotorch: bool, notes: list[str]
) -> list[dict[str, Any]]:
    tasks = []
    for env_id in settings["mujoco_envs"]:
        limits, rows = [], []
        for kind in settings["policies"]:
            limit, task_rows = _task_rows(env_id, kind, settings, devices, evotorch, notes)
            limits.append(limit)
            rows += task_rows
        tasks.append(
            {
                "env_id": env_id,
                "frame_skip": MUJOCO_TASKS[env_id].frame_skip,
                "popsize": settings["popsize"],
                "max_steps": settings["max_steps"] or MUJOCO_TASKS[env_id].max_episode_steps,
                "physics_threads": settings["physics_threads"],
                "cores": settings["cores"],
                "limits": limits,
                "rows": rows,
            }
        )
    return tasks


# -- the run -----------------------------------------------------------------------------------------


def _guarded(fn: Callable[[], dict[str, Any]], what: str, notes: list[str]) -> dict[str, Any] | None:
    """``fn()``, or None with a note when the device runs out of memory (the bench goes on)."""
    try:
        return fn()
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        notes.append(f"{what}: skipped, out of memory")
        return None


def _usable(device: torch.device, notes: list[str]) -> bool:
    if device.type == "cuda" and not torch.cuda.is_available():
        notes.append(f"{device}: skipped, torch.cuda.is_available() is False")
        return False
    return True


def _part1(settings: dict[str, Any], devices: list[torch.device], notes: list[str]) -> list[dict[str, Any]]:
    rows = []
    cpu = torch.device("cpu")
    for kind in settings["policies"]:
        policy = _make(kind)
        runs = [(n, cpu, "gymnasium", False) for n in settings["gym_envs"]]
        runs += [
            (n, d, "torch", mode == "compiled")
            for d in devices
            for n in _envs_for(settings, d)
            for mode in settings["modes"]
        ]
        for num_envs, device, backend, compiled in runs:
            bench = partial(
                bench_evaluation, policy, num_envs, device, backend, settings["repeats"], settings["seed"], compiled
            )
            mode = "compiled" if compiled else "eager"
            row = _guarded(bench, f"{backend} {mode} {device} {kind} {num_envs:,} envs", notes)
            if row is not None:
                rows.append(row)
    # The reference for each policy: gymnasium's best figure at any of its env counts.
    for row in rows:
        ref = [
            r["env_steps_per_s"] for r in rows if r["backend"] == "gymnasium" and r["policy"] == row["policy"]
        ]
        row["gymnasium_env_steps_per_s"] = max(ref) if ref else None
        row["vs_gymnasium"] = row["env_steps_per_s"] / max(ref) if ref else None
    return rows


def _part2(
    settings: dict[str, Any], devices: list[torch.device], notes: list[str]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    rows, bandwidth = [], {}
    policy = _make("mlp")
    for device in devices:
        mib = QUICK["buffer_mib"] if settings["quick"] else DEFAULT_BUFFER_MIB.get(device.type, 512)
        bw = _guarded(
            partial(bench_bandwidth, device, mib, settings["repeats"], settings["min_repeat_s"]),
            f"{device} bandwidth",
            notes,
        )
        if bw is None:
            continue
        bandwidth[str(device)] = bw
        for popsize in settings["popsizes"]:
            bench = partial(
                bench_forward,
                policy,
                popsize,
                settings["obs_per_member"],
                device,
                settings["repeats"],
                settings["seed"],
                bw["bound_gb_per_s"],
                settings["min_repeat_s"],
            )
            row = _guarded(bench, f"{device} MLP forward P={popsize:,}", notes)
            if row is not None:
                rows.append(row)
    return rows, bandwidth


def _make(kind: str) -> Policy:
    if kind == "mlp":
        return make_policy("mlp", OBS_DIM, ACT_DIM, hidden=list(HIDDEN), activation="tanh")
    return make_policy(kind, OBS_DIM, ACT_DIM)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both parts for the resolved flags; the figures as plain data (see the module docstring)."""
    settings = _settings(args)
    threads = torch.get_num_threads()
    if settings["threads"] is not None:
        torch.set_num_threads(settings["threads"])
    try:
        return _run(settings)
    finally:
        torch.set_num_threads(threads)


def _run(settings: dict[str, Any]) -> dict[str, Any]:
    notes: list[str] = []
    devices = [d for d in (torch.device(name) for name in settings["devices"]) if _usable(d, notes)]
    meta = {
        "env_id": ENV_ID,
        "torch_version": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "devices": [str(d) for d in devices],
        "device_names": {str(d): _device_name(d) for d in devices},
        "repeats": settings["repeats"],
        "seed": settings["seed"],
        "quick": settings["quick"],
        "noise_std": NOISE_STD,
    }
    if settings["mujoco_envs"]:
        meta.update(_mujoco_meta(settings))
    figures: dict[str, Any] = {"meta": meta}
    start = time.perf_counter()
    if settings["cartpole"]:
        figures["evaluation"] = _part1(settings, devices, notes)
        forward, figures["bandwidth"] = _part2(settings, devices, notes)
        figures["forward"] = forward
    if settings["mujoco_envs"]:
        figures["mujoco"] = _part3(settings, devices, notes)
    meta["wall_s"] = time.perf_counter() - start
    figures["notes"] = notes
    return figures


def _mujoco_meta(settings: dict[str, Any]) -> dict[str, Any]:
    import gymnasium

    mujoco = import_mujoco()
    evotorch = None
    if settings["evotorch"] and importlib.util.find_spec("evotorch") is not None:
        import evotorch

        evotorch = evotorch.__version__
    return {
        "env_ids": settings["mujoco_envs"],
        "popsize": settings["popsize"],
        "max_steps": settings["max_steps"],
        "physics_threads": settings["physics_threads"],
        "cores": settings["cores"],
        "mujoco_version": mujoco.__version__,
        "gymnasium_version": gymnasium.__version__,
        "evotorch_version": evotorch,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU, {threads} torch thread{'' if threads == 1 else 's'}"


# -- the report --------------------------------------------------------------------------------------


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _fmt_count(value: float) -> str:
    return f"{value:,.0f}"


def _part1_lines(figures: dict[str, Any]) -> list[str]:
    meta = figures["meta"]
    lines = [
        f"Part 1: {ENV_ID} population evaluation, env steps/s (one episode per member, members = envs;",
        f"  a decent controller + N(0, {NOISE_STD}^2) noise, early termination; median of {meta['repeats']})",
        f"  {'backend':<10} {'mode':<9} {'device':<7} {'policy':<7} {'envs':>10} {'mean len':>9} "
        f"{'env steps/s':>12} {'gymnasium':>11} {'vs gym':>8}",
    ]
    for r in figures["evaluation"]:
        ratio = "-" if r["vs_gymnasium"] is None else f"{r['vs_gymnasium']:.1f}x"
        lines.append(
            f"  {r['backend']:<10} {r['mode']:<9} {r['device']:<7} {r['policy']:<7} {r['num_envs']:>10,} "
            f"{r['mean_episode_length']:>9.1f} {_fmt_rate(r['env_steps_per_s']):>12} "
            f"{_fmt_rate(r['gymnasium_env_steps_per_s']):>11} {ratio:>8}"
        )
    cuda_linear = [
        r for r in figures["evaluation"] if r["device"].startswith("cuda") and r["policy"] == "linear"
    ]
    if cuda_linear:
        at_target = [r for r in cuda_linear if r["num_envs"] == TARGET_STEPS_ENVS]
        r = at_target[0] if at_target else max(cuda_linear, key=lambda r: r["num_envs"])
        lines.append(
            f"  target (H100, linear, {TARGET_STEPS_ENVS:,} envs): >= {TARGET_STEPS_PER_S:.0e} env steps/s; "
            f"measured {r['env_steps_per_s']:.3g} at {r['num_envs']:,} envs on {r['device']} "
            f"({100 * r['env_steps_per_s'] / TARGET_STEPS_PER_S:.0f}% of target)"
        )
    return lines


def _part2_lines(figures: dict[str, Any]) -> list[str]:
    meta = figures["meta"]
    rows = figures["forward"]
    e = rows[0]["obs_per_member"] if rows else 1
    d = rows[0]["num_params"] if rows else 0
    lines = [
        f"Part 2: MLP{HIDDEN} forward, obs {OBS_DIM} -> act {ACT_DIM}, D = {d:,} params/member, "
        f"E = {e} obs/member; median of {meta['repeats']}",
    ]
    for dev, bw in figures["bandwidth"].items():
        lines.append(
            f"  bandwidth {dev}: {bw['buffer_bytes'] / 2**20:,.0f} MiB buffers, "
            f"sum {bw['sum_gb_per_s']:.1f} GB/s (read), copy {bw['copy_gb_per_s']:.1f} GB/s (read + write) "
            f"-> bound {bw['bound_gb_per_s']:.1f} GB/s"
        )
    lines.append(
        f"  {'device':<7} {'members':>10} {'ms/call':>9} {'members/s':>10} {'param GB/s':>11} "
        f"{'bound GB/s':>11} {'% bound':>8}"
    )
    for r in rows:
        goal = f"   (H100 goal >= {TARGET_BOUND_PERCENT:.0f}%)" if r["device"].startswith("cuda") else ""
        lines.append(
            f"  {r['device']:<7} {r['popsize']:>10,} {1e3 * r['seconds_per_call']:>9.3f} "
            f"{_fmt_rate(r['members_per_s']):>10} {r['param_gb_per_s']:>11.1f} {r['bound_gb_per_s']:>11.1f} "
            f"{r['percent_of_bound']:>7.0f}%{goal}"
        )
    return lines


def _part3_lines(figures: dict[str, Any]) -> list[str]:
    meta = figures["meta"]
    cores = meta["cores"]
    lines = [
        f"Part 3: MuJoCo population evaluation, env steps/s ({meta['popsize']} members, one episode each, "
        f"params N(0, {NOISE_STD}^2); median of {meta['repeats']})",
        f"  physics limit = raw mj_step steps/s on one core over the evaluation's own episodes / frame skip "
        f"(x {cores} cores); mujoco backend threads and EvoTorch actors: {meta['physics_threads']}",
    ]
    for task in figures["mujoco"]:
        lines.append(f"  {task['env_id']}: frame skip {task['frame_skip']}, episodes up to {task['max_steps']} steps")
        for lim in task["limits"]:
            lines.append(
                f"    limit {lim['policy']:<7} {_fmt_count(lim['physics_steps_per_s'])} physics steps/s on 1 core "
                f"-> {_fmt_count(lim['one_core_env_steps_per_s'])} env steps/s on 1 core, "
                f"{_fmt_count(lim['all_cores_env_steps_per_s'])} on {lim['cores']}"
            )
        lines.append(
            f"    {'backend':<10} {'device':<7} {'policy':<7} {'workers':>7} {'mean len':>9} {'env steps/s':>12} "
            f"{'% 1-core':>9} {f'% {cores}-core':>9}"
        )
        for r in task["rows"]:
            lines.append(
                f"    {r['backend']:<10} {r['device']:<7} {r['policy']:<7} {r['workers']:>7} "
                f"{r['mean_episode_length']:>9.1f} {_fmt_count(r['env_steps_per_s']):>12} "
                f"{r['percent_of_one_core']:>8.0f}% {r['percent_of_all_cores']:>8.0f}%"
            )
    lines.append(
        f"  goal: mujoco >= {TARGET_PHYSICS_PERCENT:.0f}% of the {cores}-core limit on every task "
        "(gymnasium reaches ~50%, EvoTorch ~43% of the 1-core limit)"
    )
    return lines


def format_report(figures: dict[str, Any]) -> str:
    """The figures of :func:`run` as a compact table, one line per configuration."""
    meta = figures["meta"]
    load = "n/a" if meta["load_average"] is None else f"{meta['load_average']:.2f}"
    names = "; ".join(f"{d}: {n}" for d, n in meta["device_names"].items())
    lines = [f"neuroevo bench, torch {meta['torch_version']} ({names}); load average {load}", ""]
    if "evaluation" in figures:
        lines += _part1_lines(figures) + [""] + _part2_lines(figures) + [""]
    if "mujoco" in figures:
        lines += _part3_lines(figures) + [""]
    lines += [f"note: {n}" for n in figures["notes"]]
    lines.append(f"bench wall time {meta['wall_s']:.1f} s")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench, print the report, write ``--json PATH`` if given; returns the figures."""
    figures = run(args)
    print(format_report(figures), flush=True)
    if getattr(args, "json", None):
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2) + "\n")
    return figures

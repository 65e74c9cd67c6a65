"""Part 1 of ``neuroevo bench``: population evaluation on CartPole-v1, env steps/s, torch vs gymnasium.

``rollout.evaluate`` runs one real episode per member (P = num_envs, E = 1) with early termination: a
finished episode is masked and its steps stop counting, and the loop stops once every episode is over.
The members are a decent controller plus noise, so episode lengths are mixed as in a population
mid-training: the linear policy's center pushes right iff ``theta + theta_dot > 0`` (it balances ~480 of
500 steps on average); the MLP's center carries the same rule through one tanh unit per hidden layer, all
other weights zero; every member adds N(0, 0.05^2) noise to every parameter (drawn from ``--seed``, as are
the episode seeds). Backends: torch-native on each ``--device`` (eager, and the step through
``torch.compile``), and gymnasium's ``SyncVectorEnv`` (``backend="gymnasium"``, numpy on the CPU) as the
reference; the report prints each configuration's mean episode length, since the work per episode depends
on it. env steps/s = env steps taken while episodes were running / wall time of one ``evaluate`` call
(after a short warm-up call), the median over ``--repeats``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from neuroevo.bench.common import HIDDEN, NOISE_STD, Column, Table, field, fmt_rate, guarded, time_evaluate
from neuroevo.envs import make_env
from neuroevo.policies import Policy, make_policy

ENV_ID = "CartPole-v1"
OBS_DIM, ACT_DIM = 4, 2
MODES = ("eager", "compiled")
# The controller: push right iff GAINS . obs > 0, obs = [x, x_dot, theta, theta_dot].
GAINS = (0.0, 0.0, 1.0, 1.0)
# MLP center: hidden unit 0 of layer 1 is tanh(IN_GAIN * GAINS . obs), later ones tanh(HIDDEN_GAIN * unit 0).
IN_GAIN, HIDDEN_GAIN = 10.0, 3.0

# Per-device env counts; --quick replaces them with small sizes, explicit flags replace both.
DEFAULT_ENVS = {"cpu": (1024, 16384), "cuda": (16384, 131072, 1 << 20)}
DEFAULT_GYM_ENVS = (256,)
QUICK = {"envs": (64, 256), "gym_envs": (16,)}

# The target on an H100, printed beside the CUDA figures only.
TARGET_STEPS_PER_S = 1e9  # linear policy, 1M envs
TARGET_STEPS_ENVS = 1 << 20


def make(kind: str) -> Policy:
    """The ``kind`` policy ("linear", or "mlp": MLP(64, 64) with tanh) on CartPole's dims."""
    if kind == "mlp":
        return make_policy("mlp", OBS_DIM, ACT_DIM, hidden=list(HIDDEN), activation="tanh")
    return make_policy(kind, OBS_DIM, ACT_DIM)


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


def population(policy: Policy, popsize: int, device: torch.device, seed: int) -> torch.Tensor:
    """params [P, D] on ``device``: the controller plus N(0, NOISE_STD^2) per parameter."""
    generator = torch.Generator(device=device).manual_seed(seed)
    params = torch.empty(popsize, policy.num_params, device=device)
    params.normal_(0.0, NOISE_STD, generator=generator)
    return params.add_(controller_params(policy, device))


def bench_evaluation(
    policy: Policy, num_envs: int, device: torch.device, backend: str, repeats: int, seed: int,
    compile: bool = False,
) -> dict[str, Any]:
    """Env steps/s of ``rollout.evaluate`` with P = num_envs members, one episode each (``compile``:
    the step through ``torch.compile``; its compilation happens in the warm-up, outside the timing)."""
    params = population(policy, num_envs, device, seed)
    env = make_env(ENV_ID, num_envs, device=device, backend=backend)
    seconds, result = time_evaluate(policy, params, env, repeats, seed, compile=compile)
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


def envs_for(settings: dict[str, Any], device: torch.device) -> tuple[int, ...]:
    """The torch backend's env counts on ``device``: ``--envs``, else the --quick or per-device default."""
    if settings["envs"] is not None:
        return settings["envs"]
    if settings["quick"]:
        return QUICK["envs"]
    return DEFAULT_ENVS.get(device.type, DEFAULT_ENVS["cpu"])


def rows(settings: dict[str, Any], devices: list[torch.device], notes: list[str]) -> list[dict[str, Any]]:
    """One row per policy, backend, device, env count and mode; each against gymnasium's best figure."""
    out = []
    cpu = torch.device("cpu")
    for kind in settings["policies"]:
        policy = make(kind)
        runs = [(n, cpu, "gymnasium", False) for n in settings["gym_envs"]]
        runs += [
            (n, d, "torch", mode == "compiled")
            for d in devices
            for n in envs_for(settings, d)
            for mode in settings["modes"]
        ]
        for num_envs, device, backend, compiled in runs:
            bench = partial(
                bench_evaluation, policy, num_envs, device, backend, settings["repeats"], settings["seed"], compiled
            )
            mode = "compiled" if compiled else "eager"
            row = guarded(bench, f"{backend} {mode} {device} {kind} {num_envs:,} envs", notes)
            if row is not None:
                out.append(row)
    # The reference for each policy: gymnasium's best figure at any of its env counts.
    for row in out:
        ref = [r["env_steps_per_s"] for r in out if r["backend"] == "gymnasium" and r["policy"] == row["policy"]]
        row["gymnasium_env_steps_per_s"] = max(ref) if ref else None
        row["vs_gymnasium"] = row["env_steps_per_s"] / max(ref) if ref else None
    return out


TABLE = Table(
    [
        Column("backend", 10, field("backend"), left=True),
        Column("mode", 9, field("mode"), left=True),
        Column("device", 7, field("device"), left=True),
        Column("policy", 7, field("policy"), left=True),
        Column("envs", 10, field("num_envs", ",")),
        Column("mean len", 9, field("mean_episode_length", ".1f")),
        Column("env steps/s", 12, lambda r: fmt_rate(r["env_steps_per_s"])),
        Column("gymnasium", 11, lambda r: fmt_rate(r["gymnasium_env_steps_per_s"])),
        Column("vs gym", 8, lambda r: "-" if r["vs_gymnasium"] is None else f"{r['vs_gymnasium']:.1f}x"),
    ],
    indent="  ",
)


def report(figures: dict[str, Any]) -> list[str]:
    """Part 1's lines of the report: the table, and the CUDA figure against the issue's target."""
    repeats = figures["meta"]["repeats"]
    lines = [
        f"Part 1: {ENV_ID} population evaluation, env steps/s (one episode per member, members = envs;",
        f"  a decent controller + N(0, {NOISE_STD}^2) noise, early termination; median of {repeats})",
        *TABLE.lines(figures["evaluation"]),
    ]
    cuda_linear = [r for r in figures["evaluation"] if r["device"].startswith("cuda") and r["policy"] == "linear"]
    if cuda_linear:
        at_target = [r for r in cuda_linear if r["num_envs"] == TARGET_STEPS_ENVS]
        r = at_target[0] if at_target else max(cuda_linear, key=lambda r: r["num_envs"])
        lines.append(
            f"  target (H100, linear, {TARGET_STEPS_ENVS:,} envs): >= {TARGET_STEPS_PER_S:.0e} env steps/s; "
            f"measured {r['env_steps_per_s']:.3g} at {r['num_envs']:,} envs on {r['device']} "
            f"({100 * r['env_steps_per_s'] / TARGET_STEPS_PER_S:.0f}% of target)"
        )
    return lines

"""Part 2 of ``neuroevo bench``: the member forward of MLP(64, 64) against the measured memory bandwidth.

On CartPole's dims (obs 4 -> act 2, D = 4,610), one call is ``policy(params [P, D], obs [P, E, 4])``;
each call reads the P * D * 4 parameter bytes once, which dominates its memory traffic at E = 1
(activations are ~130 floats per member against 4,610 parameters): its time is at least those bytes over
the memory bandwidth, and it is judged against the bandwidth that the same device achieves in the same run:

- ``sum``: ``buf.sum()`` over a float32 buffer (2 GiB on CUDA, 512 MiB on the CPU: far larger than
  any cache), counted as bytes read, the same access pattern as the forward's parameter reads;
- ``copy``: ``dst.copy_(src)`` between two such buffers, counted as bytes read + written.

The bound is the larger of the two, so the percentage is never flattered. A population that fits in
the last-level cache (P = 1,024 is 19 MB) can exceed 100%. Both the forward and the bandwidth are
looped calls (:func:`neuroevo.bench.common.seconds_per_call`), each repeat at least ``MIN_REPEAT_S``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from neuroevo.bench.cartpole import ACT_DIM, OBS_DIM, make
from neuroevo.bench.common import HIDDEN, Column, Table, field, fmt_rate, guarded, seconds_per_call
from neuroevo.policies import Policy

MIN_REPEAT_S = 0.2  # each repeat loops the call for at least this long
DEFAULT_POPSIZES = (1024, 16384, 131072)
DEFAULT_BUFFER_MIB = {"cpu": 512, "cuda": 2048}
QUICK: dict[str, Any] = {"popsizes": (256, 1024), "buffer_mib": 32, "min_repeat_s": 0.02}
TARGET_BOUND_PERCENT = 70.0  # the goal on an H100, % of the bandwidth bound


def bench_bandwidth(device: torch.device, mib: int, repeats: int, min_s: float) -> dict[str, Any]:
    """Achievable memory bandwidth of ``device`` in GB/s (1e9 bytes/s): a read-only sum and a copy."""
    numel = mib * 2**20 // 4
    src = torch.ones(numel, device=device)
    dst = torch.empty_like(src)
    nbytes = numel * 4
    sum_s = seconds_per_call(src.sum, device, repeats, min_s)
    copy_s = seconds_per_call(lambda: dst.copy_(src), device, repeats, min_s)
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
        seconds = seconds_per_call(lambda: policy(params, obs), device, repeats, min_s)
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


def rows(
    settings: dict[str, Any], devices: list[torch.device], notes: list[str]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(one row per device and population size, each device's bandwidth figures)."""
    out, bandwidth = [], {}
    policy = make("mlp")
    min_s = QUICK["min_repeat_s"] if settings["quick"] else MIN_REPEAT_S
    for device in devices:
        mib = QUICK["buffer_mib"] if settings["quick"] else DEFAULT_BUFFER_MIB.get(device.type, 512)
        bw = guarded(partial(bench_bandwidth, device, mib, settings["repeats"], min_s), f"{device} bandwidth", notes)
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
                min_s,
            )
            row = guarded(bench, f"{device} MLP forward P={popsize:,}", notes)
            if row is not None:
                out.append(row)
    return out, bandwidth


def _goal(row: dict[str, Any]) -> str:
    return f"  (H100 goal >= {TARGET_BOUND_PERCENT:.0f}%)" if row["device"].startswith("cuda") else ""


TABLE = Table(
    [
        Column("device", 7, field("device"), left=True),
        Column("members", 10, field("popsize", ",")),
        Column("ms/call", 9, lambda r: f"{1e3 * r['seconds_per_call']:.3f}"),
        Column("members/s", 10, lambda r: fmt_rate(r["members_per_s"])),
        Column("param GB/s", 11, field("param_gb_per_s", ".1f")),
        Column("bound GB/s", 11, field("bound_gb_per_s", ".1f")),
        Column("% bound", 8, lambda r: f"{r['percent_of_bound']:.0f}%"),
        Column("", 0, _goal),  # CUDA rows only
    ],
    indent="  ",
)


def report(figures: dict[str, Any]) -> list[str]:
    """Part 2's lines of the report: each device's bandwidth, then the table."""
    rows = figures["forward"]
    e = rows[0]["obs_per_member"] if rows else 1
    d = rows[0]["num_params"] if rows else 0
    lines = [
        f"Part 2: MLP{HIDDEN} forward, obs {OBS_DIM} -> act {ACT_DIM}, D = {d:,} params/member, "
        f"E = {e} obs/member; median of {figures['meta']['repeats']}",
    ]
    for dev, bw in figures["bandwidth"].items():
        lines.append(
            f"  bandwidth {dev}: {bw['buffer_bytes'] / 2**20:,.0f} MiB buffers, "
            f"sum {bw['sum_gb_per_s']:.1f} GB/s (read), copy {bw['copy_gb_per_s']:.1f} GB/s (read + write) "
            f"-> bound {bw['bound_gb_per_s']:.1f} GB/s"
        )
    return lines + TABLE.lines(rows)

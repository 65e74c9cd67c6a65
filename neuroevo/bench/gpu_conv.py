"""Part 8 of the GPU check (:mod:`neuroevo.bench.gpu_check`): the conv policies' population forward on the device.

For each :class:`~neuroevo.policies.cnn.ConvPolicy` architecture (``nature``, Mnih et al. 2015, and ``small``, the
Deep Neuroevolution code's; valid padding), a ladder of population sizes P: P members, each a different network,
on one uint8 observation of 4 x 84 x 84 each (a lock-step of a population evaluation on Atari), every layer one
grouped convolution (``groups = P``) or ``bmm``. Beside it, the same architecture as one plain torch network on a
batch of P observations: the work of the same step for P copies of one member, what the population forward would
reach if distinct weights cost nothing. Figures: member-steps/s of each, and the population's share of the plain
network's rate. No target: the figure is for the Atari guide (docs/guides/atari.md), beside the CPU's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from neuroevo.bench.budget import Ladder, PartContext

#: population sizes per architecture on a GPU (a ladder: larger ones while the part's time lasts)
GPU_POPSIZES = (64, 256, 1024)
QUICK_POPSIZES = (2,)
ARCHS = ("nature", "small")
#: frames stacked x screen x screen: the DQN preprocessing's observation
OBS_SHAPE = (4, 84, 84)


def _seconds(call: Callable[[], Any], device: torch.device, repeats: int, min_s: float) -> float:
    """Median seconds of one ``call`` (after one warm-up call), each timing at least ``min_s`` long."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call()
    sync()
    times = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            call()
            n += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_s:
                break
        times.append(elapsed / n)
    return sorted(times)[len(times) // 2]


def conv_row(arch: str, popsize: int, device: torch.device, repeats: int, min_s: float) -> dict[str, Any]:
    """One (arch, P) on ``device``: member-steps/s of the population forward and of one plain network on a batch
    of P observations, and the population's peak allocated memory on CUDA."""
    from neuroevo.policies.cnn import ConvPolicy

    policy = ConvPolicy(OBS_SHAPE, 18, arch=arch)
    gen = torch.Generator(device=device).manual_seed(0)
    params = policy.init_params(gen, device=device)[None] + 0.01 * torch.randn(
        popsize, policy.num_params, generator=gen, device=device)
    obs = torch.randint(0, 256, (popsize, 1, policy.obs_dim), generator=gen, device=device, dtype=torch.uint8)
    module = policy.to_module(params[0])
    with torch.inference_mode():
        population = _seconds(lambda: policy(params, obs), device, repeats, min_s)
        single = _seconds(lambda: module(obs[:, 0]), device, repeats, min_s)
    row: dict[str, Any] = {"arch": arch, "num_params": policy.num_params, "popsize": popsize, "device": str(device),
                           "population_member_steps_per_s": popsize / population,
                           "one_network_member_steps_per_s": popsize / single}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            policy(params, obs)
        torch.cuda.synchronize(device)
        row["population_peak_mib"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return row


def run(ctx: PartContext) -> dict[str, Any]:
    """Part 8: per architecture a ladder of population sizes (``--quick``: P = 2), rows as they are measured."""
    from neuroevo.bench.gpu_throughput import GPU_EXPONENT

    repeats = 1 if ctx.quick else 3
    min_s = 0.0 if ctx.quick else 0.3
    for arch in ARCHS:
        ladder = Ladder(ctx, f"conv forward {arch} on {ctx.device}", GPU_EXPONENT if ctx.cuda else 1.0)
        for popsize in ladder.over(QUICK_POPSIZES if ctx.quick else GPU_POPSIZES):
            row = ctx.attempt(f"conv forward {arch} P={popsize:,}", conv_row, arch, popsize, ctx.device, repeats,
                              min_s)
            if row is not None:
                ctx.record("rows", row)
    return ctx.figures


def summary(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Per architecture at its largest P: the population's member-steps/s and its share of one plain network's."""
    out = []
    rows = figures.get("rows", [])
    for arch in dict.fromkeys(r["arch"] for r in rows):
        row = max((r for r in rows if r["arch"] == arch), key=lambda r: r["popsize"])
        ours, plain = row["population_member_steps_per_s"], row["one_network_member_steps_per_s"]
        where = f"{arch} ({row['num_params']:,} params), P = {row['popsize']:,}, {row['device']}"
        out.append({"figure": f"conv population forward, member-steps/s, {where}", "value": f"{ours:,.0f}",
                    "target": "", "met": None})
        out.append({"figure": f"conv population / one network on P observations, {where}",
                    "value": f"{ours / plain:.0%}", "target": "", "met": None})
    return out

"""``neuroevo bench lowrank``: the population forward of big networks, low-rank ES against plain inference.

For MLPs of about 1M, 10M and 100M parameters (three square tanh layers of width w: D = 3 w^2 + 3 w) and
several population sizes P, each member evaluated on its own ``--batch`` inputs, it prints side by side the
member-samples per second (P x batch / seconds per forward call) of

- (a) ``inference``: plain batched inference of the unperturbed network on all P x batch inputs (one
  ``addmm`` per layer: the ceiling);
- (b) ``low-rank``: EGGROLL's population forward (``MLP(members, obs)`` on
  :class:`~neuroevo.policies.lowrank.LowRankParams` of rank ``--rank``): the shared matmul plus the rank-r
  per-member products of :mod:`neuroevo.policies.batched`;
- (c) ``full-rank``: our [P, D] path (``MLP(params, obs)``: one ``baddbmm`` per layer over P weight matrices),
  skipped where [P, D] exceeds ``--max-gib``;

and the peak resident memory of each, every (network, P, path) measured in a subprocess of its own (its
``ru_maxrss``; "above import" subtracts the process's resident memory after importing torch and neuroevo).
Times are forward calls only, the population already built in its form (factors, or [P, D]), the three paths
timed in one process, interleaved round by round (so that the load of a shared machine hits them alike); each
figure is the median of ``--repeats`` rounds, each looping a call for at least ``--min-seconds``. ``--conv``
adds the Conv2d population forward on NatureCNN's layers (Mnih et al. 2015): grouped convolution, im2col +
bmm and a loop over members, and the low-rank conv against one shared conv.

    neuroevo bench lowrank --out results/bench_lowrank.txt --json results/bench_lowrank.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from neuroevo.bench.common import (
    Column,
    Table,
    command_line,
    cpu_model,
    field,
    int_list,
    load_average,
    pick,
    seconds_per_call,
    str_list,
    write_json,
    write_text,
)

#: network name -> width w of its three square layers
NETWORKS = {"1m": 576, "10m": 1824, "100m": 5760}
#: population sizes per network (a 100M-parameter forward on P x batch inputs takes seconds on 2 cores)
POPSIZES = {"1m": (16, 64, 256), "10m": (16, 64, 256), "100m": (4, 16)}
PATHS = ("inference", "low-rank", "full-rank")
QUICK: dict[str, Any] = {"networks": ("tiny",), "popsizes": (8,), "batch": 4, "repeats": 1, "min_seconds": 0.01}
TINY_WIDTH = 64  # the --quick network
TARGET_OF_INFERENCE = 0.5  # the goal at 10M parameters: low-rank >= 50% of plain inference
#: NatureCNN's conv layers on 4 x 84 x 84 inputs: (C, H, O, kernel, stride)
NATURE_CONVS = ((4, 84, 32, 8, 4), (32, 20, 64, 4, 2), (64, 9, 64, 3, 1))
QUICK_CONVS = ((4, 20, 8, 4, 2), (8, 9, 8, 3, 1))  # --quick: two small layers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The low-rank bench's flags on ``parser``."""
    parser.add_argument("--networks", type=str_list, help=f"of {', '.join(NETWORKS)} (default: all)")
    parser.add_argument("--popsizes", type=int_list, help="population sizes for every network (default: per network)")
    parser.add_argument("--batch", type=int, help="inputs per member (default: 16)")
    parser.add_argument("--rank", type=int, default=4, help="rank of the low-rank perturbations (default: 4)")
    parser.add_argument("--max-gib", type=float, default=6.0, help="largest [P, D] the full-rank path builds (GiB)")
    parser.add_argument("--repeats", type=int, help="timed repeats per figure (default: 3)")
    parser.add_argument("--min-seconds", type=float, help="each repeat loops at least this long (default: 0.3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--conv", action="store_true", help="also the Conv2d population forward (NatureCNN)")
    parser.add_argument("--quick", action="store_true", help="one tiny network, one P (seconds; for the tests)")
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--json", help="also write the rows here")


# -- one measurement, in a process of its own -----------------------------------------------------------


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _forward(path: str, policy: Any, center: torch.Tensor, obs: torch.Tensor, rank: int) -> Callable[[], Any]:
    """The forward call of ``path`` on ``obs`` [P, N, w], its population built (factors, or [P, D]) on obs' device."""
    from neuroevo.policies.lowrank import LowRankParams, noise_dim

    P, N, w = obs.shape
    generator = torch.Generator(device=obs.device).manual_seed(1)
    if path == "inference":
        layers = [(center[s:b].view(i, o), center[b:e]) for i, o, s, b, e in policy._layers]

        def plain() -> torch.Tensor:
            x = obs.reshape(P * N, w)
            for k, (W, b) in enumerate(layers):
                x = torch.addmm(b, x, W)
                x = torch.tanh(x) if k < len(layers) - 1 else x
            return x.view(P, N, -1)

        return plain
    if path == "low-rank":
        layout = policy.param_layout()
        z = torch.randn(P, noise_dim(layout, rank), generator=generator, device=obs.device)
        signs = torch.ones(P, device=obs.device).index_fill_(0, torch.arange(P // 2, P, device=obs.device), -1.0)
        members = LowRankParams.from_noise(center, layout, rank, z, 0.02 * signs)
        return partial(policy, members, obs)
    params = center.expand(P, center.numel()).clone()
    return partial(policy, params, obs)


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process. ``job["paths"]`` of one network and P: with ``job["timed"]``, the seconds per
    forward call of each path, the paths interleaved round by round (``repeats`` rounds, the median kept) so
    that a change in the machine's load hits them alike; else one path's peak resident memory over two calls."""
    torch.set_num_threads(job["threads"])
    base_kib = _rss_kib()
    cpu = torch.device("cpu")
    if not job["timed"]:
        with torch.inference_mode():
            call = _calls(job["width"], job["popsize"], job["batch"], job["rank"], job["paths"], cpu)[job["paths"][0]]
            call()
            call()
        peak = _rss_kib()
        return {"peak_rss_mib": peak / 1024, "above_import_mib": (peak - base_kib) / 1024}
    return {"seconds_per_call": time_paths(job["width"], job["popsize"], job["batch"], job["rank"], job["paths"], cpu,
                                           job["repeats"], job["min_seconds"])}


def _calls(width: int, popsize: int, batch: int, rank: int, paths: Sequence[str],
           device: torch.device) -> dict[str, Callable[[], Any]]:
    from neuroevo.policies import MLP

    policy = MLP(width, width, hidden=(width, width), activation="tanh")
    generator = torch.Generator().manual_seed(0)
    center = policy.init_params(generator).to(device)
    obs = torch.randn(popsize, batch, width, generator=generator).to(device)
    return {path: _forward(path, policy, center, obs, rank) for path in paths}


def time_paths(width: int, popsize: int, batch: int, rank: int, paths: Sequence[str], device: torch.device,
               repeats: int, min_s: float) -> dict[str, float]:
    """Seconds per forward call of each path, the paths interleaved round by round, the median of ``repeats``."""
    seconds: dict[str, list[float]] = {path: [] for path in paths}
    with torch.inference_mode():
        calls = _calls(width, popsize, batch, rank, paths, device)
        for _ in range(repeats):
            for path, call in calls.items():
                seconds[path].append(seconds_per_call(call, device, 1, min_s))
    return {path: statistics.median(t) for path, t in seconds.items()}


def _in_subprocess(job: dict[str, Any]) -> dict[str, Any]:
    code = ("import json, sys; from neuroevo.bench.lowrank import measure; "
            "print(json.dumps(measure(json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()
        return {**job, "error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the Conv2d population forward (in this process) -------------------------------------------------------


def bench_conv(popsize: int, batch: int, rank: int, repeats: int, min_s: float,
               layers: tuple[tuple[int, int, int, int, int], ...] = NATURE_CONVS) -> list[dict[str, Any]]:
    """Per NatureCNN conv layer: member-samples/s of the full-rank forward as a grouped conv, as im2col + bmm
    and as a loop over members, and of the low-rank forward against one shared conv of all inputs."""
    import torch.nn.functional as F

    from neuroevo.policies import batched

    cpu, rows = torch.device("cpu"), []
    generator = torch.Generator().manual_seed(0)
    for C, H, O, k, s in layers:
        x = torch.randn(popsize, batch, C, H, H, generator=generator)
        weight = 0.05 * torch.randn(popsize, O, C, k, k, generator=generator)
        bias = torch.zeros(popsize, O)
        down = torch.randn(popsize, C * k * k, rank, generator=generator)
        up = 0.01 * torch.randn(popsize, O, rank, generator=generator)
        calls: dict[str, Callable[[], Any]] = {
            "grouped": partial(batched.conv2d, x, weight, bias, s),
            "im2col": partial(batched.conv2d_im2col, x, weight, bias, s),
            "loop": partial(_member_loop, x, weight, bias, s),
            "shared": partial(F.conv2d, x.reshape(-1, C, H, H), weight[0], bias[0], stride=s),
            "low_rank": partial(batched.conv2d_low_rank, x, weight[0], bias[0], down, up, None, s),
        }
        row: dict[str, Any] = {"layer": f"{C}x{H}x{H} -> {O}, {k}x{k}/{s}", "popsize": popsize, "batch": batch}
        with torch.inference_mode():
            for name, fn in calls.items():
                row[name] = popsize * batch / seconds_per_call(fn, cpu, repeats, min_s)
        rows.append(row)
    return rows


def _member_loop(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> list[torch.Tensor]:
    import torch.nn.functional as F

    return [F.conv2d(x[p], weight[p], bias[p], stride=stride) for p in range(x.shape[0])]


# -- the run ------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark, print its report; returns its rows."""
    quick = args.quick
    networks = pick(args.networks, QUICK["networks"], tuple(NETWORKS), quick)
    unknown = [n for n in networks if n not in NETWORKS and not (quick and n == "tiny")]
    if unknown:
        raise ValueError(f"unknown network {', '.join(unknown)}; choose of {', '.join(NETWORKS)}")
    batch = pick(args.batch, QUICK["batch"], 16, quick)
    repeats = pick(args.repeats, QUICK["repeats"], 3, quick)
    min_s = pick(args.min_seconds, QUICK["min_seconds"], 0.3, quick)
    if batch < 1 or args.rank < 1 or repeats < 1 or args.threads < 1:
        raise ValueError("--batch, --rank, --repeats and --threads must be at least 1")
    rows: list[dict[str, Any]] = []
    for net in networks:
        width = TINY_WIDTH if net == "tiny" else NETWORKS[net]
        popsizes = pick(args.popsizes, QUICK["popsizes"], POPSIZES.get(net, (8,)), quick)
        for P in popsizes:
            num_params = 3 * width * width + 3 * width
            gib = P * num_params * 4 / 2**30
            paths = [p for p in PATHS if p != "full-rank" or gib <= args.max_gib]
            job = {"network": net, "width": width, "popsize": P, "batch": batch, "rank": args.rank,
                   "threads": args.threads, "repeats": repeats, "min_seconds": min_s}
            timed = _in_subprocess({**job, "paths": paths, "timed": True})
            for path in PATHS:
                row = {**job, "path": path, "num_params": num_params}
                if path not in paths:
                    row["skipped"] = f"[P, D] is {gib:.1f} GiB"
                elif "error" in timed:
                    row["error"] = timed["error"]
                else:
                    row["seconds_per_call"] = timed["seconds_per_call"][path]
                    row["samples_per_s"] = P * batch / row["seconds_per_call"]
                    memory = _in_subprocess({**job, "paths": [path], "timed": False})
                    row.update({k: memory[k] for k in ("peak_rss_mib", "above_import_mib", "error") if k in memory})
                rows.append(row)
                print(f"  {net} P={P} {path}: " + _summary(row), flush=True)
    conv_args = (4, 2, args.rank, repeats, min_s, QUICK_CONVS) if quick else (32, 4, args.rank, repeats, min_s)
    conv = bench_conv(*conv_args) if args.conv else []
    text = report(rows, conv, args)
    print(text)
    if args.out:
        write_text(args.out, text)
    result = {"machine": _machine(args.threads), "command": command_line(), "rows": rows, "conv": conv}
    if args.json:
        write_json(args.json, result)
    return result


def _summary(row: dict[str, Any]) -> str:
    if "peak_rss_mib" in row:
        return f"{row['samples_per_s']:.3g} member-samples/s, peak {row['peak_rss_mib']:.0f} MiB"
    return row.get("skipped") or row.get("error", "")


def _machine(threads: int) -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "load_average": load_average()}


def report(rows: list[dict[str, Any]], conv: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The three paths side by side per (network, P), then the Conv2d figures."""
    by_key: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault((row["network"], row["popsize"]), {})[row["path"]] = row
    table_rows = []
    for (net, P), paths in by_key.items():
        out: dict[str, Any] = {"network": net, "params": f"{paths['inference'].get('num_params', 0):,}", "P": P}
        for path in PATHS:
            r = paths.get(path, {})
            out[path] = (f"{r['samples_per_s']:.3g}" if "samples_per_s" in r
                         else "skipped" if "skipped" in r else "failed")
            out[path + " mem"] = f"{r['above_import_mib']:.0f}" if "above_import_mib" in r else "-"
        a, b, c = (paths.get(p, {}).get("samples_per_s") for p in PATHS)
        out["b/a"] = f"{b / a:.0%}" if a and b else "-"
        out["b/c"] = f"{b / c:.1f}x" if b and c else "-"
        table_rows.append(out)
    columns = [Column("network", 7, field("network"), left=True), Column("params", 11, field("params")),
               Column("P", 4, field("P")), Column("(a) inference", 13, field("inference")),
               Column("(b) low-rank", 12, field("low-rank")), Column("(c) full-rank", 13, field("full-rank")),
               Column("b/a", 5, field("b/a")), Column("b/c", 6, field("b/c")),
               Column("mem a", 6, field("inference mem")), Column("mem b", 6, field("low-rank mem")),
               Column("mem c", 6, field("full-rank mem"))]
    machine = _machine(args.threads)
    batch = rows[0]["batch"] if rows else 0
    lines = [
        f"Population forward, member-samples/s ({batch} inputs per member, rank {args.rank}); "
        f"memory: peak resident MiB above import, each in its own process",
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, {args.threads} torch "
        f"threads, load average {machine['load_average']}",
        "",
        *Table(columns).lines(table_rows),
        "",
        "(a) plain batched inference of the unperturbed network; (b) EGGROLL's low-rank population forward;",
        "(c) the full-rank [P, D] path. b/a: the share of inference throughput low-rank ES keeps (goal at 10M: "
        f">= {TARGET_OF_INFERENCE:.0%}); b/c: its speed-up over the full-rank path.",
    ]
    errors = [f"{r['network']} P={r['popsize']} {r['path']}: {r['error']}" for r in rows if "error" in r]
    lines += [f"failed: {e}" for e in errors]
    if conv:
        conv_columns = [Column("layer", 22, field("layer"), left=True), Column("P", 3, field("popsize")),
                        *(Column(name, 10, field(name, ".3g"))
                          for name in ("grouped", "im2col", "loop", "shared", "low_rank"))]
        lines += ["", "Conv2d population forward (NatureCNN layers), member-samples/s: full rank as a grouped conv, "
                  "im2col + bmm, a loop over members; one shared conv of all inputs, and the low-rank forward", "",
                  *Table(conv_columns).lines(conv)]
    return "\n".join(lines) + "\n"


# -- Part 7 of the GPU check ----------------------------------------------------------------------------------------
#: population sizes per network on a GPU (a ladder: larger ones while the part's time lasts)
GPU_POPSIZES = {"1m": (256, 1024, 4096), "10m": (64, 256, 1024), "100m": (16, 64, 256)}
GPU_BATCH = 16


def device_row(network: str, width: int, popsize: int, batch: int, rank: int, device: torch.device, repeats: int,
               min_s: float) -> dict[str, Any]:
    """One (network, P) on ``device``, in this process: each path's member-samples/s and, on CUDA, its peak
    allocated memory (``torch.cuda.max_memory_allocated`` around building and running it). The full-rank path
    runs where [P, D] takes at most half the free device memory (2 GiB on the CPU)."""
    num_params = 3 * width * width + 3 * width
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 4 * 2**30
    paths = [p for p in PATHS if p != "full-rank" or popsize * num_params * 4 <= free / 2]
    seconds = time_paths(width, popsize, batch, rank, paths, device, repeats, min_s)
    row: dict[str, Any] = {"network": network, "num_params": num_params, "popsize": popsize, "batch": batch,
                           "rank": rank, "device": str(device)}
    for path in PATHS:
        row[path] = popsize * batch / seconds[path] if path in seconds else None
        if device.type == "cuda" and path in seconds:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            with torch.inference_mode():
                call = _calls(width, popsize, batch, rank, [path], device)[path]
                call()
                torch.cuda.synchronize(device)
            row[path + " peak_mib"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
            del call
    return row


def run_gpu(ctx: Any) -> dict[str, Any]:
    """Part 7 of the GPU check: the three paths of :func:`main` on the check's device (``rows``), per network a
    ladder of population sizes (``--quick``: the tiny network)."""
    from neuroevo.bench.budget import Ladder
    from neuroevo.bench.gpu_throughput import GPU_EXPONENT

    repeats = 1 if ctx.quick else 3
    min_s = QUICK["min_seconds"] if ctx.quick else 0.3
    networks = {"tiny": TINY_WIDTH} if ctx.quick else NETWORKS
    for net, width in networks.items():
        popsizes = QUICK["popsizes"] if ctx.quick else GPU_POPSIZES[net]
        ladder = Ladder(ctx, f"low-rank forward {net} on {ctx.device}", GPU_EXPONENT if ctx.cuda else 1.0)
        for popsize in ladder.over(popsizes):
            row = ctx.attempt(f"low-rank forward {net} P={popsize:,}", device_row, net, width, popsize,
                              QUICK["batch"] if ctx.quick else GPU_BATCH, 4, ctx.device, repeats, min_s)
            if row is not None:
                ctx.record("rows", row)
    return ctx.figures


def summary_gpu(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Per network at its largest P: low-rank as a share of plain inference (>= 50% at 10M on a GPU) and its
    speed-up over the full-rank path (>= 10x where that fits, on a GPU)."""
    out = []
    for net in dict.fromkeys(r["network"] for r in figures.get("rows", [])):
        row = max((r for r in figures["rows"] if r["network"] == net), key=lambda r: r["popsize"])
        gpu = row["device"].startswith("cuda")
        a, b, c = (row.get(p) for p in PATHS)
        where = f"{row['num_params']:,} params, P = {row['popsize']:,}, {row['device']}"
        target = gpu and net == "10m"
        out.append({"figure": f"low-rank / plain inference, {where}", "value": f"{b / a:.0%}" if a and b else "-",
                    "target": f">= {TARGET_OF_INFERENCE:.0%}" if target else "",
                    "met": (b / a >= TARGET_OF_INFERENCE) if target and a and b else None})
        out.append({"figure": f"low-rank / full-rank [P, D], {where}", "value": f"{b / c:.1f}x" if b and c else "-",
                    "target": ">= 10x" if gpu and c else "", "met": (b / c >= 10) if gpu and b and c else None})
    return out

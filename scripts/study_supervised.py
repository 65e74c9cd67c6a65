"""Supervised neuroevolution vs backprop: every optimizer against Adam on small classifiers.

    .venv/bin/pip install -e ".[study]"
    .venv/bin/python scripts/study_supervised.py --out results/supervised

Trains an MLP of about 10,000 parameters (digits: 64 -> 128 -> 10, tanh, 9,610 parameters; the tabular
set the same shape on its features) with Adam through autograd and with every population optimizer,
each under the same budget (``--seconds`` of training time, at most ``--forwards`` forward passes),
several seeds, then writes ``report.md`` (test accuracy and losses after the same number of forward
passes and after the same number of seconds) and plots of test accuracy against forward passes and
seconds, plus how each method scales with the network's size (``--sizes``: about 1K, 10K and 100K
parameters, on digits) and, for full-rank ES against its low-rank variant EGGROLL, a network of 1M
parameters on the ``classification`` set (``make_classification``, 100K x 256; ``--large-methods``, each run
under ``--large-seconds``). Every run is saved to ``runs/`` as it finishes and skipped when the script is run
again, so an interrupted study continues where it stopped. ``--report-only`` rebuilds the report.

The population methods' hyperparameters are ours (a few trials on digits, not a search); they are in
``METHODS`` below and printed into the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from neuroevo.algorithms import ALGORITHMS
from neuroevo.supervised import Budget, Classifiers, load_dataset, train_backprop, train_population

# method -> hyperparameters (popsize P: P x 64 forward passes per generation)
METHODS: dict[str, dict] = {
    "adam": {"lr": 1e-3},
    "es": {"popsize": 256, "sigma": 0.02, "lr": 0.01, "weight_decay": 0.0},
    "eggroll": {"popsize": 256, "sigma": 0.02, "lr": 0.01, "weight_decay": 0.0, "rank": 4},
    "ars": {"popsize": 256, "sigma": 0.02, "lr": 0.02, "top_directions": 32},
    "ga": {"popsize": 256, "sigma": 0.01, "truncation": 20, "num_elites": 5},
    "pso": {"popsize": 256, "sigma": 0.1},
    "de": {"popsize": 256, "sigma": 0.1},
    "sa": {"popsize": 256, "sigma": 0.01},
    "hill_climbing": {"popsize": 256, "sigma": 0.01},
    "random_search": {"popsize": 256, "sigma": 0.1},
    "cmaes": {"popsize": 256, "sigma": 0.05, "separable": True},
    "pgpe": {"popsize": 256, "sigma": 0.02},
    "snes": {"popsize": 256, "sigma": 0.02},
    "xnes": {"popsize": 256, "sigma": 0.02},
    "cem": {"popsize": 256, "sigma": 0.02},
    "nelder_mead": {"popsize": 256, "sigma": 0.05},
    "aco_r": {"popsize": 256, "sigma": 0.1},
}
# Full-covariance searchers keep a D x D matrix and factor it every generation: out of reach above this.
FULL_COVARIANCE = {"xnes"}
FULL_COVARIANCE_MAX_PARAMS = 2_000
SIZES = {"1k": (16,), "10k": (128,), "100k": (512, 128), "1m": (1024, 768)}
LARGE = ("classification", "1m")  # the 1M-parameter network on make_classification's 100K x 256 set
BATCH = 64


def thin(rows: list[dict], keep: int = 80) -> list[dict]:
    """At most about ``keep`` rows, log-spaced by iteration (the first and last always), numbers rounded to
    5 significant digits: the curves on a log axis, in small files."""
    if len(rows) > keep:
        last = len(rows) - 1
        picks = sorted({0, last, *(min(last, round(last ** (k / keep))) for k in range(keep + 1))})
        rows = [rows[i] for i in picks]
    return [{k: float(f"{v:.5g}") if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def run_path(out: Path, dataset: str, size: str, method: str, seed: int) -> Path:
    return out / "runs" / dataset / size / method / f"seed{seed}.json"


def skip_reason(method: str, problem: Classifiers) -> str | None:
    if method != "adam" and method not in ALGORITHMS:
        return "not installed in this environment"
    if method in FULL_COVARIANCE and problem.num_params > FULL_COVARIANCE_MAX_PARAMS:
        return f"D x D covariance for D = {problem.num_params:,}"
    return None


def run_one(problem: Classifiers, method: str, seed: int, budget: Budget) -> list[dict]:
    if method == "adam":
        return train_backprop(problem, budget, seed=seed, **METHODS["adam"])
    return train_population(problem, method, budget, seed=seed, **METHODS[method])


def run_all(args) -> None:
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    budget = Budget(forwards=args.forwards, seconds=args.seconds, clock=clock, log_every=args.log_every)
    jobs = [(d, "10k", m, s) for d in args.datasets for m in args.methods for s in args.seeds]
    jobs += [("digits", size, m, args.seeds[0]) for size in args.sizes if size != "10k" for m in args.methods]
    jobs += [(*LARGE, m, args.seeds[0]) for m in args.large_methods]
    # Scoring a 1M-parameter network on the 75,000 training examples costs seconds: log it less often.
    large_budget = Budget(forwards=args.forwards, seconds=args.large_seconds, clock=clock, log_every=250)
    for dataset, size, method, seed in jobs:
        path = run_path(args.out, dataset, size, method, seed)
        if path.exists():
            continue
        problem = Classifiers(load_dataset(dataset, seed=0), hidden=SIZES[size], batch_size=BATCH)
        reason = skip_reason(method, problem)
        record = {"dataset": dataset, "size": size, "method": method, "seed": seed, "num_params": problem.num_params}
        if reason is None:
            record["rows"] = thin(run_one(problem, method, seed, large_budget if size == LARGE[1] else budget))
            last = record["rows"][-1]
            print(f"{dataset} {size} {method} seed {seed}: test accuracy {last['test_accuracy']:.3f} after "
                  f"{last['forwards']:,} forward passes, {last['seconds']:.1f} s", flush=True)
        else:
            record["skipped"] = reason
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)  # a finished run is never half-written


def load_runs(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("seed*.json"))]


def at_forwards(rows: list[dict], forwards: int) -> dict:
    """The last logged row within ``forwards`` forward passes."""
    return [r for r in rows if r["forwards"] <= forwards][-1]


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def table(runs: list[dict], dataset: str) -> list[str]:
    """Markdown rows for one data set at the 10K size."""
    mine = [r for r in runs if r["dataset"] == dataset and r["size"] == "10k"]
    adam = [r for r in mine if r["method"] == "adam" and "rows" in r]
    # the forward-pass budget everyone is read at: what Adam used in its time budget (the fewest)
    equal_forwards = min(r["rows"][-1]["forwards"] for r in adam) if adam else None
    lines = [
        f"| method | test accuracy at {equal_forwards:,} forward passes | test accuracy at the time budget "
        "| train loss at the time budget | forward passes used | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        group = [r for r in mine if r["method"] == method]
        if not group:
            continue
        if "skipped" in group[0]:
            lines.append(f"| {method} | not run: {group[0]['skipped']} | | | | |")
            continue
        early = [at_forwards(r["rows"], equal_forwards)["test_accuracy"] for r in group]
        final = [r["rows"][-1] for r in group]
        used = statistics.median(f["forwards"] for f in final)
        lines.append(
            f"| {method} | {_mean_std(early)} | {_mean_std([f['test_accuracy'] for f in final])} "
            f"| {_mean_std([f['train_loss'] for f in final])} | {used:,.0f} | {len(group)} |"
        )
    return lines


def scaling_table(runs: list[dict]) -> list[str]:
    sizes = [s for s in SIZES if any(r["size"] == s and r["dataset"] == "digits" for r in runs)]
    params = {s: next(r["num_params"] for r in runs if r["size"] == s and r["dataset"] == "digits") for s in sizes}
    lines = ["| method | " + " | ".join(f"{params[s]:,} params" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for method in METHODS:
        cells = []
        for s in sizes:
            group = [r for r in runs if r["dataset"] == "digits" and r["size"] == s and r["method"] == method]
            run = min(group, key=lambda r: r["seed"]) if group else None
            if run is None:
                cells.append("")
            elif "skipped" in run:
                cells.append(f"not run ({run['skipped']})")
            else:
                cells.append(f"{run['rows'][-1]['test_accuracy']:.3f}")
        if any(cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def large_table(runs: list[dict]) -> list[str]:
    """Markdown rows for the 1M-parameter network: each method at its time budget."""
    lines = ["| method | test accuracy | train loss | iterations | forward passes | seconds |",
             "|---|---|---|---|---|---|"]
    for method in METHODS:
        for run in (r for r in runs if (r["dataset"], r["size"]) == LARGE and r["method"] == method and "rows" in r):
            last = run["rows"][-1]
            lines.append(f"| {method} | {last['test_accuracy']:.3f} | {last['train_loss']:.3f} | {last['iteration']:,} "
                         f"| {last['forwards']:,} | {last['seconds']:.0f} |")
    return lines


def plot(runs: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for dataset in sorted({r["dataset"] for r in runs if r["size"] == "10k"}):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for k, method in enumerate(METHODS):
            group = [r for r in runs if r["dataset"] == dataset and r["size"] == "10k" and r["method"] == method]
            group = [r for r in group if "rows" in r]
            style = {"color": f"C{k % 10}", "ls": "-" if k < 10 else "--", "alpha": 0.8}
            for ax, key in zip(axes, ("forwards", "seconds"), strict=True):
                for i, r in enumerate(group):
                    shown = [row for row in r["rows"] if row[key] > 0]  # log axis: from the first step on
                    xs, ys = [row[key] for row in shown], [row["test_accuracy"] for row in shown]
                    ax.plot(xs, ys, label=method if i == 0 else None, **style)
        for ax, key in zip(axes, ("forward passes (examples through the network)", "training seconds"), strict=True):
            ax.set_xlabel(key)
            ax.set_ylabel("test accuracy")
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8, ncol=2)
        fig.suptitle(f"{dataset}: MLP of ~10K parameters, Adam vs population optimizers (each seed a line)")
        fig.tight_layout()
        name = f"supervised_{dataset}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names


def report(args) -> None:
    runs = load_runs(args.out)
    command_file = args.out / "command.txt"
    command = command_file.read_text().strip() if command_file.exists() else args.command
    clock = "wall clock" if args.clock == "wall" else "CPU time of the process: a 1-thread run's wall clock when idle"
    lines = [
        "# Supervised neuroevolution vs backprop",
        "",
        f"Command: `{command}`; machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{args.threads} torch threads, load average when the report was written {os.getloadavg()[0]:.2f}.",
        f"Budget per run: {args.seconds:g} s of training time ({clock}) or {args.forwards:,} forward passes, "
        f"whichever first; minibatch {BATCH}. Test accuracy on the held-out 25%; mean ± std over seeds.",
        "A forward pass is one example through the network once; Adam's backward pass (about two more) is "
        "not counted in forward passes, only in seconds.",
        "",
    ]
    for dataset in sorted({r["dataset"] for r in runs if r["size"] == "10k"}):
        lines += [f"## {dataset}", "", *table(runs, dataset), ""]
    lines += ["## Scaling with the network's size (digits, seed 0, test accuracy at the time budget)", "",
              *scaling_table(runs), ""]
    large = [r for r in runs if (r["dataset"], r["size"]) == LARGE and "rows" in r]
    if large:
        lines += [f"## A network of {large[0]['num_params']:,} parameters (classification: make_classification, "
                  f"100K x 256, 10 classes; seed 0, {args.large_seconds:g} s per run)", "", *large_table(runs), ""]
    for name in plot(runs, args.out):
        lines += [f"![{name}]({name})", ""]
    lines += ["## Hyperparameters (ours)", "", "```", *(f"{m}: {kw}" for m, kw in METHODS.items()), "```", ""]
    (args.out / "report.md").write_text("\n".join(lines))
    print(f"wrote {args.out / 'report.md'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/supervised"))
    parser.add_argument("--datasets", default="digits,breast_cancer")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sizes", default="1k,10k,100k", help=f"network sizes for the scaling table: {list(SIZES)}")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--large-methods", default="adam,es,eggroll",
                        help="methods run on the 1M-parameter network (empty: none)")
    parser.add_argument("--large-seconds", type=float, default=120.0, help="budget of each 1M-parameter run")
    parser.add_argument("--forwards", type=int, default=10**9)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="seconds of this process's CPU time (fair on a shared machine; default) or wall clock")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    args.datasets = args.datasets.split(",")
    args.methods = args.methods.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.sizes = args.sizes.split(",")
    args.large_methods = [m for m in args.large_methods.split(",") if m]
    unknown = [m for m in args.methods + args.large_methods if m not in METHODS]
    unknown += [s for s in args.sizes if s not in SIZES]
    if unknown:
        known = f"methods: {', '.join(METHODS)}; sizes: {', '.join(SIZES)}"
        parser.error(f"unknown method or size: {', '.join(unknown)} ({known})")
    if not math.isfinite(args.seconds) or args.seconds <= 0 or args.forwards <= 0:
        parser.error("--seconds and --forwards must be positive")
    args.command = "python scripts/study_supervised.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        (args.out / "command.txt").write_text(args.command + "\n")  # what the report names, on rebuilds too
        run_all(args)
    report(args)


if __name__ == "__main__":
    main()

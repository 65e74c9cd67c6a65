"""The report of a comparison: a markdown table, PNG learning curves and a compact JSON summary.

:func:`summarize` computes the table rows from a :class:`~neuroevo.compare.Comparison`;
:func:`write_report` writes ``report.md``, ``return_vs_env_steps.png``, ``return_vs_wall_time.png`` and
``summary.json`` (the rows and every run's curve: small enough to commit). Plots need matplotlib (the
``plots`` extra).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from neuroevo.algorithms import ALGORITHMS
from neuroevo.compare import Comparison, Run

#: algorithm -> display name: the optimizer's own name (``ES``, ``PSO``, ``HillClimbing``, ...), and PPO
NAMES = {**{algo: cls.name for algo, cls in ALGORITHMS.items()}, "ppo": "PPO (SB3)", "sac": "SAC (SB3)",
         "td3": "TD3 (SB3)"}
ZOO_BENCHMARK = "https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/benchmark.md"


def first_reach(curve: list[dict[str, float]], threshold: float | None) -> dict[str, float] | None:
    """The first evaluation at or above ``threshold`` (None if none, or no threshold)."""
    if threshold is None:
        return None
    return next((point for point in curve if point["return"] >= threshold), None)


def summarize(comparison: Comparison) -> list[dict[str, Any]]:
    """One row per algorithm with finished runs: final return mean/std over seeds, and the median env steps
    and wall time to the threshold over the seeds that reached it (None: not reached)."""
    rows = []
    for algo in comparison.algos:
        runs = comparison.runs.get(algo, [])
        if not runs:
            continue
        finals = [r.result["final_return"] for r in runs]
        reached = [p for p in (first_reach(r.curve, comparison.threshold) for r in runs) if p is not None]
        rows.append(
            {
                "algo": algo,
                "seeds": len(runs),
                "final_return_mean": statistics.fmean(finals),
                "final_return_std": statistics.pstdev(finals),
                "best_return_mean": statistics.fmean(r.result["best_return"] for r in runs),
                "seeds_reaching": len(reached),
                "steps_to_threshold": statistics.median(p["env_steps"] for p in reached) if reached else None,
                "wall_to_threshold": statistics.median(p["wall"] for p in reached) if reached else None,
                "wall_time_mean": statistics.fmean(r.result["wall_time"] for r in runs),
                "env_steps_mean": statistics.fmean(r.result["env_steps"] for r in runs),
            }
        )
    return rows


def _steps(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


def table(comparison: Comparison, rows: list[dict[str, Any]]) -> str:
    """The markdown table of :func:`summarize`'s rows."""
    lines = [
        "| algorithm | final return (mean ± std) | seeds | env steps to threshold | wall time to threshold "
        "| seeds reaching | wall time per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["steps_to_threshold"] is None:
            to_steps = to_wall = "not reached"
        else:
            to_steps, to_wall = _steps(row["steps_to_threshold"]), _seconds(row["wall_to_threshold"])
        lines.append(
            f"| {NAMES.get(row['algo'], row['algo'])} | {row['final_return_mean']:.1f} ± {row['final_return_std']:.1f} "
            f"| {row['seeds']} | {to_steps} | {to_wall} | {row['seeds_reaching']}/{row['seeds']} "
            f"| {_seconds(row['wall_time_mean'])} |"
        )
    return "\n".join(lines)


def band(runs: list[Run], key: str, points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeds' curves interpolated on one grid of ``key`` ('env_steps' or 'wall') where all of them have data.

    Returns (x [G], mean [G], low [G], high [G]): the mean over seeds and the min/max band.
    """
    curves = [r.curve for r in runs if r.curve]
    lo = max(c[0][key] for c in curves)
    hi = min(c[-1][key] for c in curves)
    if hi <= lo:  # one evaluation each, or curves that do not overlap: the first seed's own points
        x = np.array([p[key] for p in curves[0]], dtype=float)
        ys = np.array([[p["return"] for p in curves[0]]])
    else:
        x = np.geomspace(lo, hi, points) if key == "wall" and lo > 0 else np.linspace(lo, hi, points)
        ys = np.stack([np.interp(x, [p[key] for p in c], [p["return"] for p in c]) for c in curves])
    return x, ys.mean(0), ys.min(0), ys.max(0)


def plot(comparison: Comparison, key: str, path: Path) -> Path:
    """Return against ``key`` ('env_steps' or 'wall'): one line per algorithm (mean over seeds), min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
    for algo in comparison.algos:
        runs = [r for r in comparison.runs.get(algo, []) if r.curve]
        if not runs:
            continue
        x, mean, low, high = band(runs, key)
        seeds = f"{len(runs)} seed" + ("s" if len(runs) != 1 else "")
        line = ax.plot(x, mean, label=f"{NAMES.get(algo, algo)} ({seeds})")[0]
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if comparison.threshold is not None:
        ax.axhline(comparison.threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
    if key == "wall":
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("wall time (s, log scale)")
    else:
        ax.set_xlabel("env steps (training)")
    ax.set_ylabel("evaluated return (deterministic)")
    ax.set_title(f"{comparison.env_id}: {_steps(comparison.steps)} env steps per run; mean over seeds, min-max band",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency

    # a 64-colour palette keeps the committed PNGs a third of their size, with no visible difference
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


def _threads(comparison: Comparison) -> str:
    """The runs' torch threads: each run's own record, or compare.json's (the last call's) for runs from before
    result.json kept them."""
    default = comparison.info.get("threads") or "default"
    counts = {f"{r.algo} seed {r.seed}": r.result.get("threads", default)
              for runs in comparison.runs.values() for r in runs}
    if len(set(counts.values())) <= 1:
        return f"{next(iter(counts.values()), default)} thread(s)"
    return "threads by run (" + "; ".join(f"{run}: {n}" for run, n in counts.items()) + ")"


def _load_line(comparison: Comparison) -> str:
    loads = [r.result["load_average_start"][0] for runs in comparison.runs.values() for r in runs]
    loads += [r.result["load_average_end"][0] for runs in comparison.runs.values() for r in runs]
    if not loads:
        return ""
    machine = comparison.info.get("machine", {})
    return (
        f"Machine: {machine.get('cpus')} CPUs{', CUDA' if machine.get('cuda') else ''}, torch on "
        f"{_threads(comparison)}; 1-minute load average at the start and end "
        f"of the runs: {min(loads):.2f} to {max(loads):.2f} (mean {statistics.fmean(loads):.2f}). Other jobs shared "
        "the machine, so wall times compare only within this report."
    )


def _sanity_line(comparison: Comparison, rows: list[dict[str, Any]], algo: str = "ppo") -> str:
    info = comparison.info
    if algo == "ppo":
        source, ref = info.get("ppo_source"), info.get("ppo_reference") or {}
    else:
        entry = (info.get("baselines") or {}).get(algo) or {}
        source, ref = entry.get("source"), entry.get("reference") or {}
    name = algo.upper()
    row = next((r for r in rows if r["algo"] == algo), None)
    if row is None:
        return ""
    if source is None:
        return f"{name} ran with Stable-Baselines3's default hyperparameters: the task card has no RL Zoo settings."
    if ref.get("return") is None:
        return f"The RL Zoo's benchmark.md lists no {name} number for this task."
    if ref.get("steps") != comparison.steps:
        return (
            f"The RL Zoo's benchmark.md reports {name} at {_steps(ref['steps'])} steps ({ref['return']:.1f} ± "
            f"{ref['std']:.1f}); this budget differs, so there is no like-for-like check."
        )
    low, high = ref["return"] - ref["std"], ref["return"] + ref["std"]
    mean = row["final_return_mean"]
    verdict = "within" if low <= mean <= high else "above" if mean > high else "below"
    return (
        f"Sanity check against the RL Zoo's [benchmark.md]({ZOO_BENCHMARK}) ({name} at the same "
        f"{_steps(ref['steps'])} steps: {ref['return']:.1f} ± {ref['std']:.1f}, one agent on the env version the task "
        f"card names, std over its evaluation episodes): our {name}'s final return {row['final_return_mean']:.1f} "
        f"(mean over {row['seeds']} seed{'s' if row['seeds'] > 1 else ''}) is {verdict} that spread."
    )


def render(comparison: Comparison, rows: list[dict[str, Any]], command: str | None = None) -> str:
    """report.md's text."""
    missing = [
        f"{a} seed {s}"
        for a, seeds in comparison.planned.items()
        for s in seeds
        if s not in {r.seed for r in comparison.runs.get(a, [])}
    ]
    threshold = "none" if comparison.threshold is None else f"{comparison.threshold:g}"
    parts = [
        f"# {comparison.env_id}: evolution vs policy gradients",
        "",
        f"Budget {comparison.steps} training env steps per run, seeds {', '.join(map(str, comparison.seeds))}; "
        f"threshold {threshold} (the task card's). Final return: the last evaluation of each run (mean ± std over "
        "seeds); env steps and wall time to threshold: the first evaluation at or above it, median over the seeds "
        "that reached it. Evolution: neuroevo's Trainer with the task card's settings (the optimizer's solution is "
        "evaluated: ES/ARS/CMA-ES/... their center, GA its elite, the others their best member); "
        "PPO: Stable-Baselines3 with the card's [ppo] table "
        f"({comparison.info.get('ppo_source') or 'SB3 defaults'}) on gymnasium's env; SAC and TD3 likewise with "
        "the [sac] and [td3] tables. Wall time counts training "
        "and evaluations.",
        "",
        table(comparison, rows),
        "",
        "![return vs env steps](return_vs_env_steps.png)",
        "![return vs wall time](return_vs_wall_time.png)",
    ]
    sanity = [_sanity_line(comparison, rows, algo) for algo in ("ppo", "sac", "td3")]
    for line in (*sanity, _load_line(comparison)):
        if line:
            parts += ["", line]
    if missing:
        parts += ["", f"Not finished (left out): {', '.join(missing)}."]
    commands = list(dict.fromkeys([*comparison.info.get("commands", []), *([command] if command else [])]))
    if commands:
        parts += ["", "Produced by:", "", "```bash", *commands, "```"]
    return "\n".join(parts) + "\n"


def write_report(comparison: Comparison, out: str | Path | None = None, command: str | None = None) -> dict[str, Any]:
    """Write report.md, the two PNGs and summary.json into ``out`` (default: the comparison's directory
    is the caller's choice; pass it). Returns ``{"rows": [...], "files": [paths]}``."""
    if out is None:
        raise ValueError("write_report needs an output directory (out)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(comparison)
    files = [
        plot(comparison, "env_steps", out / "return_vs_env_steps.png"),
        plot(comparison, "wall", out / "return_vs_wall_time.png"),
    ]
    command = command or comparison.info.get("command")
    (out / "report.md").write_text(render(comparison, rows, command))
    summary = {
        "info": comparison.info,
        "rows": rows,
        "runs": [
            {"algo": r.algo, "seed": r.seed, "result": r.result, "curve": [[p["env_steps"], round(p["wall"], 3),
                                                                              round(p["return"], 3)] for p in r.curve]}
            for runs in comparison.runs.values()
            for r in runs
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, separators=(",", ":")) + "\n")
    files += [out / "report.md", out / "summary.json"]
    return {"rows": rows, "files": files}

"""Reproduce a row of Mania et al. (2018), Table 1, on this machine: ARS V2-t with linear policies on the
MuJoCo locomotion tasks (gymnasium's -v5 envs on neuroevo's mujoco backend), several seeds.

    .venv/bin/pip install -e ".[plots]"
    .venv/bin/python scripts/reproduce_ars.py --tasks Swimmer-v5,Hopper-v5,HalfCheetah-v5 --seeds 0,1,2 \\
        --out results/ars_mujoco

Each run uses its task card (envs/<task>.toml: the paper's step size, directions, top directions, noise
and reward shift) and stops at the card's threshold or after ``--budget`` times the paper's median
number of episodes; ``--set KEY=VALUE`` changes a card setting for every run. Seeds already in ``--out`` from
the same settings are kept, and each seed runs in ``--runs``/<task>/seed<k> with a checkpoint every generation, so
a killed invocation continues the seed it was in from its last generation. Writes, per task,
``<task>.json`` (evaluated return of the center against training episodes and env steps, per seed, and the
episodes each seed needed to reach the threshold) and one ``ars_mujoco.png`` with a panel per task measured in
``--out`` (each seed's curve against episodes).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from neuroevo import Trainer, resolve_config
from neuroevo.config import config_from_dict, parse_override

# Mania et al. (2018), Table 1: median episodes of ARS V2-t to reach the threshold on the -v1 envs.
PAPER_MEDIAN_EPISODES = {
    "Swimmer-v5": 427,
    "Hopper-v5": 1973,
    "HalfCheetah-v5": 1707,
    "Walker2d-v5": 24000,
    "Ant-v5": 20800,
    "Humanoid-v5": 142600,
}


def with_settings(task: str, settings: list[dict]):
    """The task card's config with ``settings`` (parsed ``--set`` overrides) applied in order."""
    card = resolve_config(task)
    for setting in settings:
        card = config_from_dict(setting, card)
    return card


def run_seed(task: str, seed: int, budget: float, threads: int | None, run_dir: Path,
             settings: list[dict] | None = None) -> dict:
    """One ARS run with the card's settings (and ``settings``, parsed ``--set`` overrides) in ``run_dir``, continued
    from its last checkpoint when an earlier invocation was killed mid-run; the evaluated return of the center
    against training episodes and env steps."""
    card = with_settings(task, settings or [])
    popsize = card.ars.popsize * card.env.episodes
    generations = max(1, round(budget * PAPER_MEDIAN_EPISODES[task] / popsize))
    overrides = {"run": {"algo": "ars", "seed": seed, "device": "cpu", "generations": generations},
                 "env": {"num_threads": threads}}
    config = config_from_dict(overrides, card)
    if (run_dir / "checkpoints" / "last.pt").exists():
        earlier = json.loads((run_dir / "config.json").read_text())
        if _without_threads(earlier) != _without_threads(json.loads(json.dumps(config.to_dict()))):
            raise SystemExit(f"{run_dir} holds a {task} run with other settings than this invocation's: move it away "
                             "to start afresh, or rerun with its settings")
        trainer = Trainer.resume(run_dir)
    else:
        trainer = Trainer(config, run_dir, overwrite=True)
    result = trainer.run()
    if result.interrupted:  # SIGINT / SIGTERM: the trainer checkpointed its last generation; the seed is not done
        raise SystemExit(f"{task} seed {seed} interrupted at generation {result.generations}; rerun the same command "
                         f"to continue it from {run_dir}")
    # metrics.jsonl holds every generation, also those before a resume (the trainer keeps only recent ones)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [
        {"episodes": row["episodes"], "env_steps": row["env_steps"], "return": row["eval/return_mean"]}
        for row in rows
        if "eval/return_mean" in row
    ]
    reached = next((p["episodes"] for p in curve if p["return"] >= card.env.threshold), None)
    return {"seed": seed, "curve": curve, "episodes_to_threshold": reached, "wall_s": result.wall_time,
            "final_return": result.final_eval_return, "best_return": result.best_eval_return}


def _without_threads(config: dict) -> dict:
    """A config dict without the physics thread count, which changes speed only."""
    return {**config, "env": {k: v for k, v in config["env"].items() if k != "num_threads"}}


def summarize(card, task: str, runs: list[dict], settings: list[str] | None = None) -> dict:
    reached = [r["episodes_to_threshold"] for r in runs if r["episodes_to_threshold"] is not None]
    return {
        "settings": settings or [],
        "normalize_obs": card.policy.normalize_obs,
        "threshold": card.env.threshold,
        "paper_median_episodes": PAPER_MEDIAN_EPISODES[task],
        "seeds_reaching_threshold": len(reached),
        "median_episodes_to_threshold": median_episodes(runs),
        "hyperparameters": {"ars": vars(card.ars), "reward_shift": card.env.reward_shift},
        "runs": runs,
    }


def finished_runs(path: Path, settings: list[str], card) -> list[dict]:
    """The seeds an earlier invocation finished in ``path``, when it ran the same settings and ARS config (a
    changed card or ``--set`` starts afresh)."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    same = (earlier.get("settings", []) == settings and earlier.get("normalize_obs", True) == card.policy.normalize_obs
            and earlier["hyperparameters"]["ars"] == vars(card.ars))
    return earlier["runs"] if same else []


def median_episodes(runs: list[dict]) -> float | None:
    """Median over all seeds of the episodes to the threshold, a seed that never reached it counting
    as infinitely many (as the paper's medians do); None when that median is not reached."""
    episodes = sorted(math.inf if r["episodes_to_threshold"] is None else r["episodes_to_threshold"] for r in runs)
    median = statistics.median(episodes)
    return None if math.isinf(median) else median


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, (task, res) in zip(axes[0], results.items(), strict=True):
        for run in res["runs"]:
            xs = [p["episodes"] for p in run["curve"]]
            ys = [p["return"] for p in run["curve"]]
            ax.plot(xs, ys, lw=1, alpha=0.8, label=f"seed {run['seed']}")
        ax.axhline(res["threshold"], color="k", ls="--", lw=1, label="paper threshold")
        ax.axvline(res["paper_median_episodes"], color="gray", ls=":", lw=1, label="paper median episodes")
        ax.set_title(task)
        ax.set_xlabel("training episodes")
        ax.set_ylabel("evaluated return")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="Swimmer-v5,Hopper-v5,HalfCheetah-v5,Walker2d-v5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=float, default=3.0, help="episode budget, in paper medians")
    parser.add_argument("--threads", type=int, default=None, help="physics threads (default: all cores)")
    parser.add_argument("--out", default="results/ars_mujoco")
    parser.add_argument("--runs", default="runs/reproduce_ars",
                        help="run directories (<runs>/<task>/seed<k>, with checkpoints: a killed seed continues there)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the task cards for every run, as neuroevo train --set (e.g. "
                             "policy.normalize_obs=false); the JSON records them")
    args = parser.parse_args()
    settings = [parse_override(text) for text in args.set]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for task in args.tasks.split(","):
        if task not in PAPER_MEDIAN_EPISODES:
            raise SystemExit(f"no paper figures for {task}; choose from {', '.join(PAPER_MEDIAN_EPISODES)}")
        card = with_settings(task, settings)
        runs = finished_runs(out / f"{task}.json", args.set, card)
        for seed in (int(s) for s in args.seeds.split(",")):
            if any(r["seed"] == seed for r in runs):  # resumed: finished by an earlier invocation
                continue
            run_dir = Path(args.runs) / task / f"seed{seed}"
            runs.append(run_seed(task, seed, args.budget, args.threads, run_dir, settings))
            print(task, json.dumps({k: v for k, v in runs[-1].items() if k != "curve"}), flush=True)
            # written after every seed: a killed run keeps the seeds it finished
            results[task] = summarize(card, task, runs, args.set)
            (out / f"{task}.json").write_text(json.dumps(results[task], indent=1) + "\n")
        runs.sort(key=lambda r: r["seed"])
        results[task] = summarize(card, task, runs, args.set)  # also when every seed was resumed
        (out / f"{task}.json").write_text(json.dumps(results[task], indent=1) + "\n")
    # one figure for every task measured so far in --out, this invocation's and earlier ones'
    measured = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    plot({task: measured[task] for task in PAPER_MEDIAN_EPISODES if task in measured}, out / "ars_mujoco.png")
    print(f"\n{'task':16} {'threshold':>9} {'reached':>8} {'median episodes':>16} {'paper (-v1)':>12}")
    for task, res in results.items():
        median = res["median_episodes_to_threshold"]
        print(f"{task:16} {res['threshold']:>9g} {res['seeds_reaching_threshold']:>4}/{len(res['runs']):<3} "
              f"{median if median is not None else 'not reached':>16} {res['paper_median_episodes']:>12,}")


if __name__ == "__main__":
    main()

"""Which PPO belongs in Hopper-v5's card? SB3 PPO with the RL Zoo's tuned Hopper settings against SB3's defaults
plus VecNormalize, 5 seeds at 1M env steps each, printed side by side with the published figures.

Each variant is one ``neuroevo compare`` (``runs/ppo-hopper/<variant>/``: a rerun skips finished seeds and
continues an interrupted one from its last save, so the script can be stopped and restarted at will), with its
archive in ``results/ppo-hopper/archive/<variant>/`` (each finished seed's record, committed: a rerun from a fresh
clone trains only the seeds missing there); the summary of every variant's archive goes to
``results/ppo-hopper/summary.md``. A run takes 15-35 minutes of one core here; ``--variants`` and ``--seeds`` split
the study over processes (one per core, each on its own variant or seeds). ``--smoke`` runs both variants for one
seed at a tiny budget into a temporary directory.

    PYTHONPATH=$PWD nice -n 10 python scripts/ppo_hopper.py          # the study (hours)
    PYTHONPATH=$PWD python scripts/ppo_hopper.py --variants zoo --seeds 0,1   # part of it
    PYTHONPATH=$PWD python scripts/ppo_hopper.py --smoke             # a check of the script (a minute)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from neuroevo.compare import load_comparison, run_comparison
from neuroevo.report import summarize

#: published PPO figures on Hopper at 1M env steps, for the side-by-side
PUBLISHED = [
    ("RL Zoo benchmark.md, PPO Hopper-v3 (one agent, std over its evaluation episodes)", "2410 ± 10"),
    ("CleanRL's published ppo_continuous_action figure, Hopper-v4 at 1M steps", "about 2380"),
]

#: SB3's PPO defaults (PPOConfig's), with VecNormalize on: what a user who does not tune would run
SB3_DEFAULTS = {
    "source": "Stable-Baselines3 PPO defaults + VecNormalize (normalize = true)",
    "normalize": True, "num_envs": 1, "batch_size": 64, "n_steps": 2048, "gamma": 0.99, "lr": 3e-4,
    "ent_coef": 0.0, "clip_range": 0.2, "n_epochs": 10, "gae_lambda": 0.95, "max_grad_norm": 0.5,
    "vf_coef": 0.5, "hidden": [64, 64], "activation": "tanh", "log_std_init": 0.0, "ortho_init": True,
}
#: the RL Zoo's tuned Hopper settings (hyperparams/ppo.yml: Hopper-v4, with VecNormalize as the Zoo runs them),
#: the Hopper card's [ppo] table until this study; written out, since the card now holds SB3's defaults
ZOO_HOPPER = {
    "source": "RL Zoo (rl-baselines3-zoo) hyperparams/ppo.yml: Hopper-v4 (tuned)", "reference_return": 2410.435,
    "reference_std": 10.026, "normalize": True, "num_envs": 1, "batch_size": 32, "n_steps": 512, "gamma": 0.999,
    "lr": 9.80828e-05, "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99,
    "max_grad_norm": 0.7, "vf_coef": 0.835671, "hidden": [256, 256], "activation": "relu", "log_std_init": -2.0,
    "ortho_init": False,
}
VARIANTS = {"zoo": {"ppo": ZOO_HOPPER}, "sb3-defaults-vecnormalize": {"ppo": SB3_DEFAULTS}}


def summary_line(name: str, comparison) -> str:
    runs = comparison.runs["ppo"] if comparison is not None else []
    if not runs:
        return f"| {name} | 0 | pending | pending | pending | |"
    row = summarize(comparison)[0]  # the report's own figures (std over seeds: the population std, as the report)
    bests = [r.result["best_return"] for r in runs]
    hours = [r.result["wall_time"] / 3600 for r in runs]
    reached = (f"{row['seeds_reaching']}/{row['seeds']}, median {row['steps_to_threshold'] / 1e3:.0f}k steps"
               if row["steps_to_threshold"] is not None else f"0/{row['seeds']}")
    return (f"| {name} | {len(runs)} | {row['final_return_mean']:.0f} ± {row['final_return_std']:.0f} | "
            f"{statistics.fmean(bests):.0f} | {reached} | {statistics.fmean(hours):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="one seed at 4096 env steps, into a temporary folder")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds to train (default 0-4)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {','.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--runs", default="runs/ppo-hopper", help="where the runs go (resumable)")
    parser.add_argument("--results", default="results/ppo-hopper", help="where summary.md and archive/ go")
    args = parser.parse_args()
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="ppo-hopper-"))
        args.seeds, args.steps, args.runs, args.results = "0", 4096, str(tmp / "runs"), str(tmp / "results")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    for name in variants:
        overrides = VARIANTS[name]
        extra = {"ppo": {**overrides.get("ppo", {}), "eval_points": 20 if args.smoke else 50}}
        run_comparison("Hopper-v5", "ppo", args.steps, seeds, Path(args.runs) / name, extra,
                       on_run=lambda algo, seed, status, n=name: print(f"{n} seed {seed}: {status}", flush=True),
                       archive=Path(args.results) / "archive" / name)
    lines = ["| PPO settings | seeds done | final return (mean ± std over seeds) | best return | reached 3,120 | "
             "hours per seed |", "|---|---|---|---|---|---|"]
    for name in VARIANTS:  # every variant's archive, also those another process trains
        archive = Path(args.results) / "archive" / name
        lines.append(summary_line(name, load_comparison(archive) if (archive / "compare.json").exists() else None))
    text = "\n".join([
        f"# PPO on Hopper-v5: the RL Zoo's settings vs SB3's defaults + VecNormalize ({args.steps} env steps)",
        "", *lines, "", "Published figures:", "", *(f"- {what}: {value}" for what, value in PUBLISHED), "",
        "Machine: a 2-core machine shared with other jobs; wall times compare only within this table, and count "
        "any time a job was paused (not the gap before a resumed run continued).", ""])
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

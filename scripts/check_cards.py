"""Check every task card's promise: with no budget flags, each algorithm reaches the card's target,
and the saved best policy meets the threshold on 100 episodes of gymnasium's own env.

    .venv/bin/python scripts/check_cards.py --seeds 0,1,2 --out results/cards.jsonl

Runs one after another on the CPU; prints a table and writes one JSON row per run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from neuroevo import Trainer, resolve_config
from neuroevo.algorithms import ALGORITHMS
from neuroevo.config import card_names
from neuroevo.playback import evaluate_checkpoint

# The cards whose promise (no budget flags -> threshold, for every algorithm) this script checks in minutes.
CLASSIC_CARDS = ("Acrobot-v1", "CartPole-v1", "MountainCarContinuous-v0", "Pendulum-v1")


def check(card: str, algo: str, seed: int, run_dir: Path) -> dict:
    config = resolve_config(card, {"run": {"algo": algo, "seed": seed, "device": "cpu"}})
    result = Trainer(config, run_dir).run()
    reference = evaluate_checkpoint(run_dir, episodes=100, backend="gymnasium")
    return {
        "card": card, "algo": algo, "seed": seed, "solved": result.solved, "generations": result.generations,
        "env_steps": result.env_steps, "wall_s": round(result.wall_time, 2),
        "best_eval": round(result.best_eval_return, 2), "gymnasium_100": round(reference["mean"], 2),
        "threshold": config.env.threshold, "target": config.run.target,
        "meets_threshold": reference["mean"] >= config.env.threshold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", default=",".join(CLASSIC_CARDS), help=f"any of {', '.join(card_names())}")
    parser.add_argument("--algos", default=",".join(ALGORITHMS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="results/cards.jsonl")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for card in args.cards.split(","):
            for algo in args.algos.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    rows.append(check(card, algo, seed, Path(tmp) / f"{card}-{algo}-{seed}"))
                    print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"\n{'card':26} {'algo':4} {'seed':>4} {'solved':>6} {'gens':>5} {'env steps':>10} {'wall s':>7} "
          f"{'best eval':>9} {'gym 100':>8}")
    for r in rows:
        print(f"{r['card']:26} {r['algo']:4} {r['seed']:>4} {str(r['solved']):>6} {r['generations']:>5} "
              f"{r['env_steps']:>10} {r['wall_s']:>7} {r['best_eval']:>9} {r['gymnasium_100']:>8}")
    failed = [r for r in rows if not (r["solved"] and r["meets_threshold"])]
    print(f"{len(rows) - len(failed)} of {len(rows)} runs kept the card's promise")


if __name__ == "__main__":
    main()

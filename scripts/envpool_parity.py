"""EnvPool's MuJoCo -v5 tasks against gymnasium's: the step-by-step parity check that neuroevo's mujoco backend
passes (tests/envs/mujoco_parity.py: obs, reward and flags within 1e-7 at every step of whole episodes), and the
returns of random actions in distribution.

    .venv/bin/pip install -e ".[envpool]"
    .venv/bin/python scripts/envpool_parity.py --out results/envpool

How the two start alike and why gymnasium is also nudged against itself: :mod:`neuroevo.bench.envpool_parity`.
Writes ``parity.json`` in ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym

from neuroevo.bench.envpool_parity import ATOL, TASKS, random_returns, stepwise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--episodes", type=int, default=100, help="random-action episodes per library and task")
    parser.add_argument("--out", default="results/envpool")
    args = parser.parse_args()
    import envpool

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "parity.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    seeds = [int(s) for s in args.seeds.split(",")]
    for task in args.tasks.split(","):
        if task in results:  # resumable: a finished task is kept
            continue
        results[task] = {
            "envpool": [stepwise(task, s) for s in seeds],
            "gymnasium_nudged_1e-15": [stepwise(task, s, nudge=1e-15) for s in seeds],
            "random_actions": random_returns(task, args.episodes),
        }
        results["_meta"] = {"envpool": envpool.__version__, "gymnasium": gym.__version__, "atol": ATOL,
                            "seeds": seeds, "episodes": args.episodes}
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(task, "done", flush=True)
    print(f"\n{'task':26} {'first step over 1e-7':>21} {'(gymnasium nudged)':>19} {'return gap':>10} "
          f"{'random return: gymnasium':>25} {'envpool':>16} {'lengths':>13}")
    for task, res in results.items():
        if task.startswith("_"):
            continue
        firsts = ",".join("-" if r["first_step_over_tol"] is None else str(r["first_step_over_tol"])
                          for r in res["envpool"])
        nudged = ",".join("-" if r["first_step_over_tol"] is None else str(r["first_step_over_tol"])
                          for r in res["gymnasium_nudged_1e-15"])
        gap = max(abs(r["return_other"] - r["return_gymnasium"]) for r in res["envpool"])
        g, e = res["random_actions"]["gymnasium"], res["random_actions"]["envpool"]
        print(f"{task:26} {firsts:>21} {nudged:>19} {gap:>10.3g} "
              f"{g['return_mean']:>16.2f} ± {g['return_se']:<6.2f} {e['return_mean']:>8.2f} ± {e['return_se']:<6.2f} "
              f"{g['length_mean']:>6.1f}/{e['length_mean']:<6.1f}")
    print("\nfirst step over 1e-7: per seed, EnvPool against gymnasium from the noiseless start (-: whole episode "
          "within); gymnasium nudged: gymnasium against itself with the start qvel + 1e-15; return gap: the "
          "largest |return difference| of those episodes; random return: mean ± standard error over "
          f"{results['_meta']['episodes']} random-action episodes from each library's own start states; "
          "lengths: their mean lengths, gymnasium/EnvPool")


if __name__ == "__main__":
    main()

"""Does a killed and resumed baseline run equal an uninterrupted one? Prints both learning curves side by side.

For each algorithm: one uninterrupted ``neuroevo compare`` run, and one that is killed (SIGKILL) right after its
first save and then rerun, which continues from that save. The rows up to the save are the same by
construction; the rows after it show what resume reproduces (docs/guides/compare.md).

    PYTHONPATH=$PWD python scripts/baseline_resume_check.py --algos ppo,sac,td3 --out results/resume-check
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from neuroevo.baselines.sb3 import last_checkpoint
from neuroevo.cli import main
from neuroevo.faults import neuroevo_command, spawn, wait_until

SETTINGS = {  # small runs: (task, steps, overrides)
    "ppo": ("Pendulum-v1", 4096, ["ppo.n_steps=512", "ppo.save_every=1024", "ppo.eval_points=8"]),
    "sac": ("Pendulum-v1", 2000, ["sac.learning_starts=200", "sac.save_every=500", "sac.eval_points=8"]),
    "td3": ("Pendulum-v1", 2000, ["td3.learning_starts=200", "td3.save_every=500", "td3.eval_points=8"]),
}


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def check(algo: str, out: Path) -> None:
    task, steps, sets = SETTINGS[algo]
    base = ["compare", task, "--algos", algo, "--steps", str(steps), "--seeds", "1"]
    extra = [a for s in [*sets, "run.eval_episodes=3", "env.max_steps=100"] for a in ("--set", s)]
    whole, resumed = out / algo / "uninterrupted", out / algo / "resumed"
    for path in (whole, resumed):
        shutil.rmtree(path, ignore_errors=True)
    main([*base, "--out", str(whole), *extra])
    run_dir = resumed / algo / "seed0"
    args = [*base, "--out", str(resumed), *extra]
    with spawn(neuroevo_command(*args), log=out / algo / "killed.log") as child:
        wait_until(lambda: last_checkpoint(run_dir) is not None, 600, child=child, what="the first save")
        child.kill()
    saved = json.loads((run_dir / "checkpoints" / "last.json").read_text())["env_steps"]
    main(args)
    a, b = rows(whole / algo / "seed0"), rows(run_dir)
    print(f"\n{algo} on {task}, {steps} env steps, killed after the save at {saved} env steps:")
    print(f"{'env_steps':>10} {'uninterrupted':>14} {'resumed':>14}  same")
    for x, y in zip(a, b, strict=True):
        same = "yes" if x["eval/return_mean"] == y["eval/return_mean"] else "no"
        print(f"{x['env_steps']:>10} {x['eval/return_mean']:>14.2f} {y['eval/return_mean']:>14.2f}  {same}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="ppo,sac,td3")
    parser.add_argument("--out", default="results/resume-check")
    args = parser.parse_args()
    for algo in args.algos.split(","):
        check(algo, Path(args.out))


if __name__ == "__main__":
    cli()

"""Population evaluation with finished members masked against dropped from the forward, side by side.

A population's episodes end at different steps; the rollout keeps every game in the lock-step batch under a
mask, and once at most half of the forward's members still play, the forward runs only them
(``neuroevo.rollout.COMPACT_AT``). This evaluates one population both ways, alternately, on the same seeds,
and checks that every member's episodes come out the same.

The population: a saved policy (a run's best_policy.pt) and its mutants at mutation powers from 0 to 0.2, so
their games last from a few hundred steps to the cap:

    python scripts/bench_stragglers.py runs/compare/Frostbite-v5-2e6/ga/seed0/best_policy.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from neuroevo import rollout
from neuroevo.checkpoint import read_policy
from neuroevo.envs import make_env
from neuroevo.playback import saved_env

SIGMAS = (0.0, 0.0, 0.001, 0.002, 0.005, 0.01, 0.05, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", help="a saved policy (best_policy.pt)")
    parser.add_argument("--backend", default="auto", help="env backend (default auto: the task's own)")
    parser.add_argument("--rounds", type=int, default=2, help="evaluations each way (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy, params, _, normalizer, record = read_policy(args.policy)
    env_id, make_args = saved_env(record, None)
    sigmas = torch.tensor(SIGMAS)
    noise = torch.randn(len(sigmas), params.numel(), generator=torch.Generator().manual_seed(0))
    members = params[None] + sigmas[:, None] * noise
    env = make_env(env_id, len(sigmas), backend=args.backend, **make_args)
    print(f"{env_id} ({args.backend}), {len(sigmas)} members (mutation powers {', '.join(map(str, SIGMAS))}), "
          f"{args.threads} torch thread(s)")
    compact_at = rollout.COMPACT_AT
    try:
        for r in range(args.rounds):
            runs = {}
            for name, at in (("masked", 0.0), ("dropped", compact_at)):
                rollout.COMPACT_AT = at
                start = time.perf_counter()
                runs[name] = rollout.evaluate(policy, members, env, normalizer=normalizer, seed=100 + r)
                seconds = time.perf_counter() - start
                steps = runs[name].env_steps
                print(f"round {r}, finished members {name:7s}: {steps} steps in {seconds:.1f} s, "
                      f"{steps / seconds:.0f} steps/s")
            a, b = runs["masked"], runs["dropped"]
            same = torch.equal(a.episode_returns, b.episode_returns) and torch.equal(a.episode_lengths,
                                                                                     b.episode_lengths)
            print(f"round {r}: game lengths {a.episode_lengths[:, 0].tolist()}; same episodes both ways: {same}")
    finally:
        rollout.COMPACT_AT = compact_at
        env.close()


if __name__ == "__main__":
    main()

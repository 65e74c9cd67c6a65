#!/usr/bin/env bash
# Set up, then train a first policy: the GA of Such et al. (2017) on CartPole-v1 with its task card's settings
# (GPU if present, else CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Why the GA and not ES, the default optimizer: on CartPole both are limited by the per-step cost of the lock-step
# batch (about 90 small torch ops per env step, a few microseconds each whatever the batch size), so the showcase
# is the one that needs the fewest lock-steps. Measured on the project's 2-core machine on 2026-12-01 (process CPU
# time of the whole in-process `Trainer.run`, seeds 0-7, one other core busy): the GA card (64 members) solved in
# 2-7 generations and 0.32-1.39 s. Seed 0, the seed this script runs, took 0.55-0.87 s over 8 runs, the spread being
# this machine's (the same work). This script in a fresh clone printed 0.5-1.0 s of training, and the policy scored
# 500.0 on 100 episodes of gymnasium's CartPole-v1. ES with 256 members took 4-10 generations and 1.4-3.9 s (2026-11-30,
# under heavy load) and seed 2's policy scored 471.6 there.
exec .venv/bin/neuroevo train --env CartPole-v1 --algo ga --out "${1:-runs/quickstart-$(date +%Y%m%d-%H%M%S)}"

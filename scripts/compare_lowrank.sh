#!/usr/bin/env bash
# Low-rank ES (EGGROLL, rank 4) against full-rank ES on Hopper-v5 with an MLP(256, 256) policy, the same settings
# otherwise (the card's [es] section: popsize 64, sigma 0.02, Adam lr 0.01, weight decay 0.005). The issue's budget
# is 1e7 env steps per run and 3 seeds (STEPS, SEEDS); runs go to $OUT (a rerun skips finished runs and continues
# an interrupted one from its checkpoint), the report to results/compare/Hopper-v5-lowrank/.
#   STEPS=10000000 SEEDS=3 bash scripts/compare_lowrank.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-10000000}
SEEDS=${SEEDS:-3}
OUT=${OUT:-runs/compare/Hopper-v5-lowrank}
"$PY" -m neuroevo compare Hopper-v5 --algos es,eggroll --steps "$STEPS" --seeds "$SEEDS" --out "$OUT" \
    --set policy.kind=mlp --set "policy.hidden=[256,256]" \
    --set eggroll.popsize=64 --set eggroll.sigma=0.02 --set eggroll.lr=0.01 --set eggroll.weight_decay=0.005 \
    --set eggroll.rank=4
"$PY" -m neuroevo report "$OUT" --out results/compare/Hopper-v5-lowrank

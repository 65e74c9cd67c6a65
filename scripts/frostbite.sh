#!/usr/bin/env bash
# Frostbite from pixels on a small machine: the Deep Neuroevolution GA (Such et al. 2017) over 3 seeds, and ES
# (with virtual batch normalization, as Salimans et al. 2017 ran it), ARS, random search and PPO
# (Stable-Baselines3 with the RL Zoo's Atari settings) over one seed each, at the same budget of agent steps
# (4 frames each), with the card's protocol (envs/ALE/Frostbite-v5.toml): whole games on the unclipped score,
# no sticky actions, up to 30 no-ops, the 5,000-step cap, the Nature network with SAME padding (4M parameters).
#
#   bash scripts/frostbite.sh            # the study: about 7 hours of a quiet 2-core machine, resumable
#   bash scripts/frostbite.sh --smoke    # the same commands at a tiny budget, into a temporary folder
# Each run's torch uses every core (THREADS, default nproc): the conv forward is most of a step, so one run at a
# time uses the machine.
#
# The card's populations are the papers' (GA 1,000, ES 5,000 episodes per generation): here one generation
# would take longer than the whole budget. Measured on this project's 2-core machine (quiet, 2026-12-02), the
# GA evaluates about 510 agent steps a second and an early Frostbite game lasts about 2,000 steps, so an hour
# is about 30 generations of 30 games. Every evolution method gets 30 games a generation: the GA 24 members
# plus 2 candidates x 3 validation games (the paper: 1,000 plus 10 x 30; truncation 5 of 24 against 20 of
# 1,000), ES and ARS 15 antithetic pairs (ARS updating with the top 8), random search 30 fresh networks.
# Evaluations: 10 games every 5 generations. The Deep Neuroevolution repository's own CPU configuration for
# Frostbite (configurations/frostbite_ga.json) ran a population of 10.
#
# Runs go to runs/compare/Frostbite-v5-2e6[-es-vbn]/ (checkpoints; a rerun continues where a run stopped), their
# records to results/compare/Frostbite-v5-2e6*/archive/ (committed: a later session or machine skips them; a GA or
# random search run stopped by `pkill -TERM -f "neuroevo compare"` leaves its checkpoint there too, and continues), and
# the reports to results/compare/Frostbite-v5-2e6*/. ES is its own comparison because VBN is a policy setting,
# which a comparison shares across its algorithms; the GA's paper had no VBN.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
THREADS=${THREADS:-$(nproc)}
NAME=Frostbite-v5-2e6
STEPS=2000000
RUNS=runs/compare
RESULTS=results/compare
SETTINGS=(--set ga.popsize=24 --set ga.truncation=5 --set ga.num_elites=2 --set ga.elite_episodes=3
          --set es.popsize=30 --set ars.popsize=30 --set ars.top_directions=8 --set random_search.popsize=30
          --set run.eval_every=5 --set run.eval_episodes=10)
if [ "${1:-}" = "--smoke" ]; then
    tmp=$(mktemp -d)
    RUNS=$tmp/runs RESULTS=$tmp/results STEPS=2048
    SETTINGS=(--set ga.popsize=6 --set ga.truncation=2 --set ga.num_elites=2 --set ga.elite_episodes=1
              --set es.popsize=4 --set ars.popsize=4 --set ars.top_directions=2 --set random_search.popsize=4
              --set run.eval_every=1 --set run.eval_episodes=1 --set env.max_steps=40 --set policy.arch=small
              --set ppo.num_envs=2 --set ppo.n_steps=64 --set ppo.batch_size=64)
fi
compare() {  # NAME ALGOS SEEDS [extra settings]
    local name=$1 algos=$2 seeds=$3
    shift 3
    echo "== $name: $algos, $seeds seed(s), $(date '+%F %T') load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$PY" -m neuroevo compare ALE/Frostbite-v5 --algos "$algos" --seeds "$seeds" --steps "$STEPS" \
        --threads "$THREADS" --out "$RUNS/$name" --archive "$RESULTS/$name/archive" "${SETTINGS[@]}" "$@"
    "$PY" -m neuroevo report "$RUNS/$name" --out "$RESULTS/$name"
}
compare "$NAME" ga 3
compare "$NAME" ars,random_search,ppo 1
compare "$NAME-es-vbn" es 1 --set policy.vbn=128

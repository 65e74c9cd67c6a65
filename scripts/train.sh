#!/usr/bin/env bash
# Set up, then train the embedded default: ES on CartPole-v1 (GPU if present, else CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/neuroevo train --env CartPole-v1 --algo es --out "${1:-runs/quickstart-$(date +%Y%m%d-%H%M%S)}"

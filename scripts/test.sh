#!/usr/bin/env bash
# Set up, lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check neuroevo tests scripts
exec .venv/bin/python -m pytest -q "$@"

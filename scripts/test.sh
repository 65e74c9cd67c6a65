#!/usr/bin/env bash
# Set up, lint, type-check (mypy over neuroevo/, settings in pyproject.toml), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check neuroevo tests scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"

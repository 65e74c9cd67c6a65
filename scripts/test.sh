#!/usr/bin/env bash
# Set up, lint, type-check (mypy over neuroevo/, settings in pyproject.toml), then run the test suite; its
# tests/test_docs.py builds the docs site with warnings as errors and runs the examples of README.md and docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check neuroevo tests scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"

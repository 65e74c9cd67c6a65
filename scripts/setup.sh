#!/usr/bin/env bash
# Creates .venv (if missing) and installs neuroevo with its test tools into it.
# torch is installed first, pinned to the CPU build this project's machines carry on disk
# (a bare `pip install torch` would pull a multi-GB CUDA build); an existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/pip install -q "torch==2.13.0"
fi
.venv/bin/pip install -q -e ".[test]"
# Headless MuJoCo rendering (neuroevo eval --video, and its test) uses OSMesa, a Debian package.
if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq libosmesa6 >/dev/null) \
            || echo "warning: could not install libosmesa6; video rendering will not work" >&2
    else
        echo "note: for headless video rendering install OSMesa: sudo apt-get install libosmesa6" >&2
    fi
fi

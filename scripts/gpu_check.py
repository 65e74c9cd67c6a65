"""Every GPU check and benchmark in one prepared run under one time budget: ``neuroevo bench gpu`` as a script
(:mod:`neuroevo.bench.gpu_check` documents the parts, the budget and the output; docs/guides/gpu-check.md the
command sequence for a GPU window).

    PYTHONPATH=/tmp/site:$PWD python3 scripts/gpu_check.py --budget 300 --out $OUT/gpu    # on the GPU machine
    .venv/bin/python scripts/gpu_check.py --quick --device cpu --out /tmp/gpu-quick     # a check that it runs
"""

import sys

from neuroevo.bench import script

if __name__ == "__main__":
    sys.exit(script("gpu", prog="gpu_check.py"))

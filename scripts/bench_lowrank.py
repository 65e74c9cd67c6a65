"""The population forward of 1M-100M-parameter networks (low-rank ES, plain inference, the [P, D] path):
``neuroevo bench lowrank`` as a script (:mod:`neuroevo.bench.lowrank` documents the method).

    .venv/bin/python scripts/bench_lowrank.py --conv --out results/bench_lowrank.txt --json results/bench_lowrank.json
"""

import sys

from neuroevo.bench import script

if __name__ == "__main__":
    sys.exit(script("lowrank"))

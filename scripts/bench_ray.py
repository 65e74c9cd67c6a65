"""Scaling of distributed evaluation on one machine over 1, 2, 4, 8 and 16 Ray workers: ``neuroevo bench ray``
as a script (:mod:`neuroevo.bench.ray_workers` documents the method).

    .venv/bin/python scripts/bench_ray.py --out results/bench_ray.txt
"""

import sys

from neuroevo.bench import script

if __name__ == "__main__":
    sys.exit(script("ray"))

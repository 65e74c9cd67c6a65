"""The warp backend's throughput beside its physics limit and the mujoco CPU backend: ``neuroevo bench warp``
as a script (:mod:`neuroevo.bench.warp` documents the method).

    python scripts/bench_warp.py --env Hopper-v5,HalfCheetah-v5,Ant-v5 --json results/bench_warp.json
    python scripts/bench_warp.py --quick --device cpu     # a check that it runs, on the CPU
"""

import sys

from neuroevo.bench import script

if __name__ == "__main__":
    sys.exit(script("warp"))

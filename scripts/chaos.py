"""Try to break neuroevo: kills, Ray worker and head losses, bad files, fuzzed configs, bad dynamics, a soak run.

    python scripts/chaos.py --quick                       # a few of each (what tests/test_chaos.py runs)
    nice -n 10 python scripts/chaos.py --out results/chaos  # the full counts (docs/guides/what-we-tried-to-break.md)
    python scripts/chaos.py kills files --out results/chaos # some attacks only

The attacks live in neuroevo.chaos; this script only calls it.
"""

import sys

from neuroevo.chaos import main

if __name__ == "__main__":
    sys.exit(main())

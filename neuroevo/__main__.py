"""``python -m neuroevo``: the command line."""

import sys

from neuroevo.cli import main

sys.exit(main())

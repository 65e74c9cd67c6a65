"""``neuroevo bench [ray | warp]``: throughput benchmarks (benchmarks, not tests).

- ``neuroevo bench [--env ...]`` (:mod:`~neuroevo.bench.throughput`): CartPole population evaluation
  (:mod:`~neuroevo.bench.cartpole`), the MLP member forward against the memory bandwidth
  (:mod:`~neuroevo.bench.forward`), MuJoCo evaluation against the physics limit
  (:mod:`~neuroevo.bench.mujoco_eval`, :mod:`~neuroevo.bench.evotorch_gymne`);
- ``neuroevo bench ray`` (:mod:`~neuroevo.bench.ray_workers`): scaling over Ray workers on one machine;
- ``neuroevo bench warp`` (:mod:`~neuroevo.bench.warp`): the MuJoCo Warp backend against its physics limit.

Each module's ``add_arguments(parser)`` declares its flags and ``main(args)`` runs it and prints its
report; :mod:`~neuroevo.bench.common` holds what they share (timing, the machine, tables, JSON).
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

from neuroevo.bench import ray_workers, throughput, warp

# The subcommands; none is ``neuroevo bench`` itself (throughput).
BENCHES: dict[str, tuple[ModuleType, str]] = {
    "ray": (ray_workers, "scaling of distributed evaluation over 1, 2, 4, ... Ray workers on one machine"),
    "warp": (warp, "the MuJoCo Warp backend against its physics limit and the mujoco CPU backend (GPU)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``neuroevo bench``'s flags, and its subcommands ``ray`` and ``warp`` with theirs, on ``parser``."""
    throughput.add_arguments(parser)
    sub = parser.add_subparsers(dest="benchmark", metavar="{ray,warp}", help="optional: another benchmark instead of "
                                "the throughput figures (its flags: neuroevo bench ray --help)")
    for name, (module, summary) in BENCHES.items():
        description = (module.__doc__ or "").split("\n\n")[0]
        module.add_arguments(sub.add_parser(name, help=summary, description=description))


def main(args: argparse.Namespace) -> Any:
    """Run the benchmark ``args`` select (``args.benchmark``: None, "ray" or "warp"); returns its figures."""
    name = getattr(args, "benchmark", None)
    module = throughput if name is None else BENCHES[name][0]
    return module.main(args)


def script(name: str, argv: list[str] | None = None) -> int:
    """``scripts/bench_<name>.py``: ``neuroevo bench <name>`` as a script of its own (a flag error exits 2)."""
    module = BENCHES[name][0]
    parser = argparse.ArgumentParser(prog=f"bench_{name}.py", description=(module.__doc__ or "").split("\n\n")[0])
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        module.main(args)
    except ValueError as err:
        parser.error(str(err))
    return 0

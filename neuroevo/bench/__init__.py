"""``neuroevo bench [ray | warp]``: throughput benchmarks (benchmarks, not tests).

- ``neuroevo bench [--env ...]`` (:mod:`~neuroevo.bench.throughput`): CartPole population evaluation
  (:mod:`~neuroevo.bench.cartpole`), the MLP member forward against the memory bandwidth
  (:mod:`~neuroevo.bench.forward`), MuJoCo evaluation against the physics limit
  (:mod:`~neuroevo.bench.mujoco_eval`, :mod:`~neuroevo.bench.evotorch_gymne`);
- ``neuroevo bench ray`` (:mod:`~neuroevo.bench.ray_workers`): scaling over Ray workers on one machine;
- ``neuroevo bench warp`` (:mod:`~neuroevo.bench.warp`): the MuJoCo Warp backend against its physics limit;
- ``neuroevo bench atari`` (:mod:`~neuroevo.bench.atari`): Atari population evaluation, frames/s, against
  ale-py's vector env in a plain loop and gymnasium's vector env;
- ``neuroevo bench lowrank`` (:mod:`~neuroevo.bench.lowrank`): the population forward of big networks, EGGROLL's
  low-rank path against plain inference and the full-rank [P, D] path, with each path's peak memory;
- ``neuroevo bench gpu`` (:mod:`~neuroevo.bench.gpu_check`): every GPU check and benchmark in one run under one
  time budget, for a lent GPU machine's window (``--quick``: tiny sizes on any device).

Each module's ``add_arguments(parser)`` declares its flags and ``main(args)`` runs it and prints its
report; :mod:`~neuroevo.bench.common` holds what they share (timing, the machine, tables, JSON).
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

from neuroevo.bench import atari, gpu_check, lowrank, ray_workers, throughput, warp

# The subcommands; none is ``neuroevo bench`` itself (throughput).
BENCHES: dict[str, tuple[ModuleType, str]] = {
    "ray": (ray_workers, "scaling of distributed evaluation over 1, 2, 4, ... Ray workers on one machine"),
    "warp": (warp, "the MuJoCo Warp backend against its physics limit and the mujoco CPU backend (GPU)"),
    "atari": (atari, "Atari population evaluation frames/s: our backend, ale-py's vector env in a loop, gymnasium's"),
    "lowrank": (lowrank, "the population forward of 1M-100M-parameter networks: low-rank ES, plain inference, [P, D]"),
    "gpu": (gpu_check, "every GPU check and benchmark in one run under one time budget (--quick: any device)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``neuroevo bench``'s flags, and its subcommands (``ray``, ``warp``, ``gpu``) with theirs, on ``parser``."""
    throughput.add_arguments(parser)
    sub = parser.add_subparsers(dest="benchmark", metavar="{" + ",".join(BENCHES) + "}", help="optional: another "
                                "benchmark instead of the throughput figures (its flags: neuroevo bench ray --help)")
    for name, (module, summary) in BENCHES.items():
        description = (module.__doc__ or "").split("\n\n")[0]
        module.add_arguments(sub.add_parser(name, help=summary, description=description))


def main(args: argparse.Namespace) -> Any:
    """Run the benchmark ``args`` select (``args.benchmark``: None or a key of :data:`BENCHES`); returns its
    figures."""
    name = getattr(args, "benchmark", None)
    module = throughput if name is None else BENCHES[name][0]
    return module.main(args)


def script(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """``scripts/bench_<name>.py`` (or ``prog``): ``neuroevo bench <name>`` as a script of its own (a flag error
    exits 2)."""
    module = BENCHES[name][0]
    description = (module.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog=prog or f"bench_{name}.py", description=description)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        module.main(args)
    except ValueError as err:
        parser.error(str(err))
    return 0

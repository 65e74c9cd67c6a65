"""Wait until a Ray cluster has a given number of live nodes: the step between starting a cluster's nodes
(``ray start`` on each, as the SLURM batch script does) and training on all of them, since
:class:`~neuroevo.distributed.RayEvaluator` sizes itself on the resources the cluster has when it starts.

``python -m neuroevo.distributed.await_nodes HOST:PORT N [--timeout S]`` exits 0 once N nodes are alive,
1 with a one-line error when they are not within the timeout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from neuroevo.distributed.cluster import import_ray


def wait_for_nodes(address: str, count: int, timeout: float = 300.0, interval: float = 0.5) -> int:
    """Connect to the cluster at ``address`` (retrying while its head is still starting), wait until it has
    ``count`` live nodes and disconnect; the number of live nodes. :class:`TimeoutError` after ``timeout`` s."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    ray = import_ray()
    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            break
        except ConnectionError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Ray head answered at {address} within {timeout:g} s") from None
            time.sleep(interval)
    try:
        while (alive := sum(bool(node["Alive"]) for node in ray.nodes())) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{alive} of {count} Ray nodes joined {address} within {timeout:g} s")
            time.sleep(interval)
        return alive
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuroevo.distributed.await_nodes",
                                     description="Wait until a Ray cluster has N live nodes.")
    parser.add_argument("address", help="the head's HOST:PORT")
    parser.add_argument("count", type=int, help="live nodes to wait for")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    args = parser.parse_args(argv)
    try:
        alive = wait_for_nodes(args.address, args.count, args.timeout)
    except (TimeoutError, ValueError) as err:
        print(f"await_nodes: {err}", file=sys.stderr)
        return 1
    print(f"{alive} Ray node(s) up at {args.address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Connecting to Ray: a private local instance on the loopback interface, or an existing cluster.

A local instance (no address) binds every Ray server (GCS, raylet, object manager, workers) to
127.0.0.1 and starts no dashboard unless asked: Ray runs whatever code its clients send, so nothing of
it should listen on a network interface the user did not choose. Joining a cluster (``"auto"`` or
``HOST:PORT``) uses that cluster's own settings; docs/guides/cluster.md says how to secure one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Iterator
from typing import Any

LOOPBACK = "127.0.0.1"


def import_ray():
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("distributed evaluation needs Ray: pip install 'neuroevo[ray]'") from None
    return ray


@contextlib.contextmanager
def _loopback_node_ip(ray):
    # Ray replaces a node IP of 127.0.0.1 by the machine's routable address unless its cluster mode is
    # off (the mode it uses on macOS and Windows); with the node IP at 127.0.0.1 its servers listen on
    # loopback only. The flag is read when the node starts, so it is set for the ray.init call alone.
    from ray._private import ray_constants

    previous = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if previous is None:  # a Ray without the switch: connect() checks the address it got instead
        yield
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


@contextlib.contextmanager
def _python_signal_handlers():
    # ray.init installs its C++ failure handler for SIGTERM (it logs a stack trace and ends the process)
    # over the one Python had: a run's "stop after this generation" handler (trainer._StopRequest), set
    # before Ray starts with the first generation, would then never see the SIGTERM of a batch system.
    # Handlers set in Python are put back afterwards; the default ones are left to Ray.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            if callable(handler):
                signal.signal(signum, handler)


def connect(address: str | None = None, *, num_cpus: int | None = None, include_dashboard: bool = False) -> bool:
    """Make this process a Ray driver. Returns True when it started a local instance (that it should
    shut down when done), False when Ray was already initialized or it joined ``address``.

    address: None starts a local instance bound to 127.0.0.1 (``num_cpus`` caps the CPUs it offers,
    default all); ``"auto"`` joins the cluster running on this machine, ``"HOST:PORT"`` the head at that
    address (``ray start --head`` prints it).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": True, "configure_logging": True, "logging_level": logging.WARNING}
    if address is not None:
        with _python_signal_handlers():
            ray.init(address=address, **quiet)
        return False
    with _loopback_node_ip(ray), _python_signal_handlers():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=include_dashboard,
            dashboard_host=LOOPBACK,
            **quiet,
        )
    if node_addresses() != [LOOPBACK]:
        warnings.warn(
            f"the local Ray instance listens on {', '.join(node_addresses())}, not only {LOOPBACK}: firewall it",
            RuntimeWarning,
            stacklevel=2,
        )
    return True


def node_addresses() -> list[str]:
    """The IP address of every live node of the cluster this process is connected to."""
    ray = import_ray()
    return sorted(node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"])


@contextlib.contextmanager
def local_cluster(nodes: int, prefix: str = "ne-ray-", **node_args: Any) -> Iterator[Any]:
    """``nodes`` Ray nodes on this machine, each its own raylet and object store (Ray's
    ``ray.cluster_utils.Cluster``), with this process their driver: what the multi-node tests and
    ``scripts/cluster_cost.py`` run on. Yields the cluster (``cluster.head_node``, ``cluster.worker_nodes``);
    on leaving, or when starting it fails, every node it started is stopped and its temp folder removed.

    node_args: ``ray start`` settings of every node (``num_cpus``, ``object_store_memory``, ...).
    """
    ray = import_ray()
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # another instance of this process
        ray.shutdown()
    # Ray's socket paths must fit 107 characters: a short folder of our own, not pytest's
    temp_dir = tempfile.mkdtemp(prefix=prefix)
    # The head writes its address to ray_current_cluster in Ray's *default* temp folder, whatever temp_dir
    # says, and fails where that folder does not exist yet: on a machine no Ray instance has run on.
    os.makedirs(os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray"), exist_ok=True)
    cluster = Cluster()
    try:
        cluster.add_node(**node_args, temp_dir=temp_dir, include_dashboard=False)
        for _ in range(nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)

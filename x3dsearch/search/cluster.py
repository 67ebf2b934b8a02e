"""The Ray cluster a search runs on: started locally once per session, or joined.

Trials are placed here (how many CPUs and GPUs each), and Ray's own log
messages are routed to ``search.log`` instead of the terminal.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import X3DSearchError
from ..runlog.rundir import KEEP
from ..utils.cpus import local_cpus
from ..utils.logging import setup_logging

# Quiet Tune's console output (our own table replaces it), and let Ctrl-C reach the search as
# KeyboardInterrupt (Tune's own handler would end the experiment as if it had finished). Must be
# set before ray.tune is imported.
_RAY_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1"}


@dataclass(frozen=True)
class Resources:
    """Where trials run and what they leave on disk; free to change between sessions."""

    address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_failures: int = 1
    keep: str = "models"

    def __post_init__(self) -> None:
        if self.keep not in KEEP:
            raise X3DSearchError(f"--keep must be one of {', '.join(KEEP)}, got '{self.keep}'")

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "cpus_per_trial": self.cpus_per_trial,
                "gpus_per_trial": self.gpus_per_trial, "max_failures": self.max_failures, "keep": self.keep}


def node_name(ip: str, node_id: str) -> str:
    """How the run's records name a Ray node: its IP (the machine) and the start of its node id (which
    of several nodes on one machine)."""
    return f"{ip}/{node_id[:8]}"


def this_node() -> str:
    """The node the calling Ray worker runs on."""
    import ray  # only called inside a Ray worker or driver

    return node_name(ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id())


@dataclass
class Cluster:
    """The Ray cluster a search runs on (started locally or joined); ``nodes`` describes each live node."""

    address: str | None
    cpus: float
    gpus: float
    start_s: float
    nodes: tuple[str, ...] = ()

    def slots(self, cpus_per_trial: float, gpus_per_trial: float) -> int:
        by_cpu = math.floor(self.cpus / cpus_per_trial + 1e-9) if cpus_per_trial > 0 else 10 ** 6
        by_gpu = math.floor(self.gpus / gpus_per_trial + 1e-9) if gpus_per_trial > 0 else 10 ** 6
        return max(1, min(by_cpu, by_gpu))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def check_reachable(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise X3DSearchError(f"--address must be HOST:PORT or auto, got '{address}'")
    try:
        with socket.create_connection((host, int(port)), timeout=3.0):
            pass
    except OSError as exc:
        raise X3DSearchError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc})") from None


def _local_gpus() -> int:
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install counts as no GPU
        return 0


def prepare_ray(address: str | None) -> None:
    """Environment Ray reads when it is first imported; call before anything imports ray.

    An explicit address is checked here, so an unreachable one fails before any work.
    """
    for key, value in _RAY_ENV.items():
        os.environ.setdefault(key, value)
    if address and address != "auto":
        check_reachable(address)
        _prefer_token_auth()


def start_ray(address: str | None) -> Cluster:
    """``ray.init`` once per search: local by default, or join ``HOST:PORT`` / ``auto``."""
    prepare_ray(address)
    started = time.monotonic()
    import ray  # here, after prepare_ray: Ray reads its environment once, at import

    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                  configure_logging=True)
    # Trials share cores; OpenMP threads that spin while they wait make a multi-threaded trial
    # several times slower than a single-threaded one once cores are oversubscribed.
    env_vars = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    try:
        if address:
            ray.init(address=address, runtime_env={"env_vars": env_vars}, **kwargs)
        else:
            # "local" always starts a private cluster: with no address Ray would join whatever
            # RAY_ADDRESS or the last `ray start` on this machine points to.
            ray.init(address="local", num_cpus=local_cpus(), num_gpus=_local_gpus(),
                     runtime_env={"env_vars": env_vars,
                                  "worker_process_setup_hook": "x3dsearch.search.trainable.warm_worker"}, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "locally"
        raise X3DSearchError(f"cannot start or join a Ray cluster {where} ({one_line(exc)})") from None
    route_ray_logs(None)
    resources = ray.cluster_resources()
    return Cluster(address=address, cpus=float(resources.get("CPU", 0.0)), gpus=float(resources.get("GPU", 0.0)),
                   start_s=time.monotonic() - started, nodes=_describe_nodes(ray.nodes()))


def _describe_nodes(nodes: list[dict[str, Any]]) -> tuple[str, ...]:
    """Each live node as the search log names it, with what it offers: ``10.0.0.5/1a2b3c4d (head, 8 CPUs)``."""
    described = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        offers = node.get("Resources") or {}
        parts = ["head"] if "node:__internal_head__" in offers else []
        parts.append(f"{offers.get('CPU', 0):g} CPUs")
        if offers.get("GPU"):
            parts.append(f"{offers['GPU']:g} GPUs")
        described.append(f"{node_name(node.get('NodeManagerAddress', '?'), node.get('NodeID', '?'))} "
                         f"({', '.join(parts)})")
    return tuple(described)


def _has_auth_token() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def _prefer_token_auth() -> None:
    """Clusters made by ``ray start`` use token authentication by default, but Ray sends the
    token for an explicit address only when RAY_AUTH_MODE=token, read when ray is first
    imported; a local token turns it on (a cluster without authentication accepts it too)."""
    if "RAY_AUTH_MODE" not in os.environ and _has_auth_token():
        os.environ["RAY_AUTH_MODE"] = "token"


def route_ray_logs(log_file: Path | None) -> None:
    """Ray's and Tune's own messages go to search.log, not the terminal."""
    for name in ("ray", "ray.tune", "ray.train"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL + 1)
    if log_file is not None:
        ray_logger = logging.getLogger("ray")
        if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == Path(log_file).resolve()
                   for h in ray_logger.handlers):
            handler = logging.FileHandler(log_file, encoding="utf-8")
            handler.setLevel(logging.WARNING)
            handler.setFormatter(logging.Formatter("%(asctime)s RAY %(levelname)s %(name)s: %(message)s",
                                                   "%Y-%m-%d %H:%M:%S"))
            ray_logger.addHandler(handler)


def stop_ray(cluster: Cluster | None) -> None:
    if cluster is None:
        return
    import ray  # started by start_ray, so already imported

    if ray.is_initialized():
        ray.shutdown()
    for handler in list(logging.getLogger("ray").handlers):
        if isinstance(handler, logging.FileHandler):
            logging.getLogger("ray").removeHandler(handler)
            handler.close()


def place_trials(cluster: Cluster, cpus_per_trial: float | None, gpus_per_trial: float | None,
                 ) -> tuple[float, float]:
    """Resources of one trial: one GPU each when the cluster has GPUs (and its CPUs shared among
    them), else one CPU each so trials run side by side. A trial that can never be scheduled
    would hang Tune forever, so it is refused here."""
    gpus = gpus_per_trial if gpus_per_trial is not None else (1.0 if cluster.gpus >= 1 else 0.0)
    cpus = cpus_per_trial
    if cpus is None:
        cpus = max(1.0, math.floor(cluster.cpus / max(cluster.gpus, 1.0))) if gpus > 0 else 1.0
    if cpus > cluster.cpus:
        raise X3DSearchError(f"--cpus-per-trial {cpus:g} is more than the cluster's {cluster.cpus:g} CPUs")
    if gpus > cluster.gpus:
        raise X3DSearchError(f"--gpus-per-trial {gpus:g} is more than the cluster's {cluster.gpus:g} GPUs")
    return cpus, gpus


@contextmanager
def ray_session(resources: Resources) -> Iterator[tuple[Cluster, tuple[float, float]]]:
    """Ray started (or joined) for a session and the trials placed on it; Ray always stops after."""
    cluster = start_ray(resources.address)
    try:
        yield cluster, place_trials(cluster, resources.cpus_per_trial, resources.gpus_per_trial)
    finally:
        stop_ray(cluster)


def send_logs_to(log_file: Path, console: bool) -> None:
    """Everything shown, and Ray's own warnings, also go to ``log_file`` (``search.log``)."""
    setup_logging(log_file, console=console)
    route_ray_logs(log_file)

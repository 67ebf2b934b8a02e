"""Real Ray nodes started by a test with ``ray start``: a head, and worker nodes that join it.

Several nodes on one machine are a real multi-node cluster: each has its own raylet, resources and
workers, and killing a node's process group is what a machine's death looks like to the others
(Ray's own multi-node tests do the same). A node started ``blind`` runs in a mount namespace where a
tmpfs hides some folders: a machine of the cluster that does not share that filesystem.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from search_helpers import cli_env

RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    """A TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """A head started by ``ray start`` turns token authentication on (the token goes to ~/.ray/auth_token);
    a node joining it sends the token only when RAY_AUTH_MODE=token."""
    env = cli_env()
    if (Path.home() / ".ray" / "auth_token").is_file():
        env["RAY_AUTH_MODE"] = "token"
    return env


def kill_node(proc: subprocess.Popen) -> None:
    """``kill -9`` every process of a node at once: no goodbye to the head. Also how every node a test
    starts is stopped, as a dead machine: ``ray start --block`` ignores SIGTERM (it was still running 30 s
    after one), so a SIGTERM first only made each teardown wait out a timeout."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def can_hide_folders() -> bool:
    """Whether this machine lets a process have its own mounts (root, or user namespaces)."""
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@contextmanager
def ray_head(cpus: int) -> Iterator[str]:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` CPUs; yields its address. Its temp dir is private,
    so the head does not become other processes' default cluster."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="x3dray", dir="/tmp")
    head = subprocess.Popen([str(RAY), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--num-cpus", str(cpus), "--include-dashboard", "false", "--disable-usage-stats",
                             "--temp-dir", temp_dir, "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        kill_node(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def ray_worker(address: str, cpus: int, hide: tuple[Path, ...] = ()) -> Iterator[subprocess.Popen]:
    """A worker node joining ``address`` with ``cpus`` CPUs, in its own process group; with ``hide``, it
    runs where those folders are empty tmpfs mounts. Yields once the head counts its CPUs."""
    command = [str(RAY), "start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
               "--disable-usage-stats", "--block"]
    if hide:
        if not can_hide_folders():
            pytest.skip("this machine does not allow mount namespaces (unshare --mount), which hide a node's folders")
        mounts = " && ".join(f"mount -t tmpfs tmpfs '{folder}'" for folder in hide)
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f"{mounts} && exec {' '.join(command)}"]
    node = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    try:
        _wait_for_cpus(address, node)
        yield node
    finally:
        kill_node(node)


def _wait_for_cpus(address: str, node: subprocess.Popen) -> None:
    """Until ``ray status`` at ``address`` lists more than one node (the worker has registered)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert node.poll() is None, "the worker node exited while joining"
        status = subprocess.run([str(RAY), "status", "--address", address], capture_output=True, text=True,
                                env=_env(), timeout=60)
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        if active.count("node_") >= 2:
            return
        time.sleep(0.5)
    pytest.fail("the worker node did not join the head within 90 s")


def listed_nodes(run_dir: Path) -> dict[str, str]:
    """The cluster's nodes as search.log lists them, each with what it offers (``head, 1 CPUs``); empty
    before the search has written the line."""
    log = run_dir / "search.log"
    listed = re.search(r"INFO nodes: (.*)", log.read_text()) if log.is_file() else None
    return dict(re.findall(r"(\S+) \(([^)]*)\)", listed.group(1))) if listed else {}

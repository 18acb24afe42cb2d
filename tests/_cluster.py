"""A real Redis Cluster for tests: N ``redis-server --cluster-enabled yes`` masters on free loopback ports.

Usage::

    with running_cluster(tmp_dir) as cluster:
        RedisCluster(host=cluster.host, port=cluster.nodes[0].port)

The nodes are joined much as ``redis-cli --cluster create`` does it, without its one-second sleeps: each
node takes an even share of the 16384 slots (``CLUSTER ADDSLOTSRANGE``) and its own config epoch, then every
node meets every other (``CLUSTER MEET``). The cluster is ready once ``CLUSTER INFO`` says
``cluster_state:ok`` on every node and every node knows every other. A missing ``redis-server`` is an error,
never a skip: CI installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

HOST = "127.0.0.1"
SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (the cluster bus)
READY_TIMEOUT = 20.0  # seconds for the servers to answer and the cluster to agree (about 2-3 s here)
POLL = 0.02


@dataclass
class Node:
    """One cluster node: its server process, port, and when it started on the wall clock (= Redis TIME)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    started_after: float  # time.time() just before the process was started
    answered_by: float = 0.0  # time.time() once it first answered PING
    slots: tuple[int, int] = (0, -1)  # the slot range it was given, first and last

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A plain (non-cluster) client to this node alone."""
        return redis.Redis(host=HOST, port=self.port, **kwargs)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its connections but answers nothing."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@dataclass
class Cluster:
    host: str
    nodes: list[Node] = field(default_factory=list)

    def keyslot(self, key: str) -> int:
        """The key's slot, as the cluster computes it (``CLUSTER KEYSLOT``)."""
        with self.nodes[0].client() as conn:
            return int(conn.execute_command("CLUSTER KEYSLOT", key))

    def owner_of(self, slot: int) -> Node:
        """The master serving ``slot``, as the cluster itself says (``CLUSTER SLOTS``)."""
        with self.nodes[0].client() as conn:
            ranges = conn.execute_command("CLUSTER SLOTS")
        for first, last, primary, *_replicas in ranges:  # [first, last, [host, port, id], replicas...]
            if int(first) <= slot <= int(last):
                return next(node for node in self.nodes if node.port == int(primary[1]))
        raise LookupError(f"no node serves slot {slot}: {ranges!r}")

    def owner_of_key(self, key: str) -> Node:
        return self.owner_of(self.keyslot(key))

    def wait_ok(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once every node says ``cluster_state:ok`` and knows all others; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while True:
            states = {node.address: _cluster_info(node) for node in self.nodes}
            if all(
                info.get("cluster_state") == "ok"
                and int(info.get("cluster_known_nodes", 0)) == len(self.nodes)
                and int(info.get("cluster_slots_ok", 0)) == SLOTS
                for info in states.values()
            ):
                return
            last = states
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not become ok within {timeout:g}s: {last!r}")
            time.sleep(POLL)


@contextlib.contextmanager
def running_cluster(directory: Path, masters: int = 3) -> Iterator[Cluster]:
    """Start ``masters`` cluster nodes (no replicas) keeping their files in ``directory``, join them, wait
    until the cluster is ok, and stop them all on exit (SIGCONT first, in case a test left one paused)."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not on PATH: the Redis Cluster tests need it (CI installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(HOST)
    try:
        for port in _free_cluster_ports(masters):
            cluster.nodes.append(_start_node(server, port, directory))
        for node in cluster.nodes:
            _wait_answers(node)
        _join(cluster)
        cluster.wait_ok()
        yield cluster
    finally:
        _stop(cluster.nodes)


def _start_node(server: str, port: int, directory: Path) -> Node:
    log = directory / f"redis-{port}.log"
    started_after = time.time()
    # redis-server's own argv: --save "" is passed as one empty argument.
    args = [
        server,
        "--port", str(port),
        "--bind", HOST,
        "--cluster-enabled", "yes",
        "--cluster-config-file", f"nodes-{port}.conf",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(log),
        "--daemonize", "no",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return Node(port=port, process=process, log=log, started_after=started_after)


def _wait_answers(node: Node) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if node.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {node.port} exited: {_tail(node.log)}")
        try:
            with node.client(socket_timeout=1.0) as conn:
                conn.ping()
            node.answered_by = time.time()
            return
        except redis.ConnectionError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"redis-server on port {node.port} never answered: {_tail(node.log)}"
                ) from exc
            time.sleep(POLL)


def _join(cluster: Cluster) -> None:
    count = len(cluster.nodes)
    for index, node in enumerate(cluster.nodes):
        first, last = index * SLOTS // count, (index + 1) * SLOTS // count - 1
        with node.client() as conn:
            conn.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            # Distinct epochs up front, as redis-cli does: no collision to resolve before the state is ok.
            conn.execute_command("CLUSTER SET-CONFIG-EPOCH", index + 1)
        node.slots = (first, last)
    # Every node meets every other at once: a node that knew only some of the others for a moment may count
    # itself in a minority partition, and then waits out a rejoin delay (up to 5 s) before it says ok.
    for index, node in enumerate(cluster.nodes):
        with node.client() as conn:
            for other in cluster.nodes[index + 1 :]:
                conn.execute_command("CLUSTER MEET", HOST, other.port)


def _stop(nodes: list[Node]) -> None:
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            node.process.send_signal(signal.SIGCONT)
            node.process.terminate()
    for node in nodes:
        try:
            node.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


def _cluster_info(node: Node) -> dict[str, Any]:
    try:
        with node.client(socket_timeout=1.0) as conn:
            info: dict[str, Any] = conn.cluster("INFO")
            return info
    except redis.RedisError as exc:
        return {"error": repr(exc)}


def _free_cluster_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports whose cluster-bus port (+10000) is free too."""
    ports: list[int] = []
    for _ in range(1000):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port in ports or port + CLUSTER_BUS_OFFSET > 65535:
            continue
        if _is_free(port) and _is_free(port + CLUSTER_BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"found only {len(ports)} of {count} free port pairs (port, port + 10000)")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {log})"
    return os.linesep.join(lines[-20:])

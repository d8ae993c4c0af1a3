"""A real Redis Cluster (3 masters, 3 replicas) on free loopback ports, for the store tests.

``redis_cluster`` is one cluster shared by the whole session (tests keep apart by key
prefix and never hurt its nodes); ``own_redis_cluster`` is a fresh one a test may freeze
or kill nodes of. Nodes run with ``--cluster-node-timeout 2000`` (a dead master's replica
takes over within about 3 s) and nothing on disk, and are stopped by their pid. Without
``redis-server``/``redis-cli`` on the PATH or the ``redis`` package, the tests that need
them skip and say why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import pytest
from redis_server import Shared, ask, redis_process, started, stop_process
from redis_server import missing as missing_server

NODE_TIMEOUT_MS = 2000
START_TIMEOUT = 30.0


def missing() -> str | None:
    """Why the cluster tests cannot run here, or ``None`` when they can."""
    why = missing_server()
    if why is None and shutil.which("redis-cli") is None:
        why = "redis-cli is not on the PATH (apt-get install redis-server provides it)"
    return why


def _free_cluster_port(taken: set[int]) -> int:
    """A port free on loopback whose cluster bus port (``port + 10000``) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10000 >= 65536 or port in taken or port + 10000 in taken:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisCluster:
    """Six ``redis-server --cluster-enabled yes`` processes joined into one cluster."""

    def __init__(self, masters: int = 3, *, full_coverage: bool = True) -> None:
        # full_coverage=False: the masters left serve their slots while another master's
        # are uncovered (cluster-require-full-coverage no), instead of CLUSTERDOWN.
        self.full_coverage = full_coverage
        self.directory = tempfile.mkdtemp(prefix="resilient-cluster-")
        taken: set[int] = set()
        self.ports: list[int] = []
        for _ in range(masters * 2):
            port = _free_cluster_port(taken)
            taken.update((port, port + 10000))
            self.ports.append(port)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.frozen: set[int] = set()

    @property
    def url(self) -> str:
        """A URL that discovers the whole cluster from its first node."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> RedisCluster:
        for port in self.ports:
            self._start_node(port)
        deadline = time.monotonic() + START_TIMEOUT
        for port, process in self.processes.items():
            if not started(port, process, deadline):
                self.stop()
                pytest.fail(f"redis-server (cluster node) did not start on port {port}")
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if created.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed: {created.stdout[-500:]}")
        self.wait_healthy(deadline)
        return self

    def _start_node(self, port: int) -> None:
        self.processes[port] = redis_process(
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--repl-diskless-sync-delay",
            "0",
            "--cluster-require-full-coverage",
            "yes" if self.full_coverage else "no",
            cwd=self.directory,
        )

    def ask(self, port: int, *command: str) -> str:
        """One command to one node, as raw RESP text ("" when it does not answer)."""
        return ask(port, *command)

    def serves(self, key: str) -> bool:
        """Whether a live, unfrozen master serves ``key``'s slot now."""
        try:
            self.master_of(key)
        except LookupError:
            return False
        return True

    def masters(self) -> list[int]:
        """The ports of the live masters that serve slots."""
        found = []
        for port in self.live():
            nodes = self.ask(port, "CLUSTER", "NODES")
            for line in nodes.splitlines():
                fields = line.split()
                if len(fields) > 8 and "myself" in fields[2] and "master" in fields[2]:
                    found.append(port)
        return found

    def live(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for port in self.masters():
            if port in self.frozen:
                continue
            for line in self.ask(port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if len(fields) > 8 and "myself" in fields[2]:
                    for part in fields[8:]:
                        low, _, high = part.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return port
        raise LookupError(f"no master serves slot {slot}")

    def wait_healthy(self, deadline: float | None = None) -> None:
        """Wait until every live node says the cluster is ok and every replica has synced
        with its master (a replica that never synced would not take over)."""
        deadline = deadline or time.monotonic() + START_TIMEOUT
        while True:
            ports = [p for p in self.live() if p not in self.frozen]
            states = [self.ask(p, "CLUSTER", "INFO") for p in ports]
            roles = [self.ask(p, "INFO", "replication") for p in ports]
            synced = sum("master_link_status:up" in r for r in roles) == len(self.ports) // 2
            if states and synced and all("cluster_state:ok" in s for s in states):
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the cluster never became healthy: {states[:1]}")
            time.sleep(0.05)

    def wait_replicated(self, port: int, timeout: float = START_TIMEOUT) -> bool:
        """Wait until every replica of master ``port`` has applied all the master has
        written so far; whether it did before ``timeout``. (``WAIT`` would not tell: it
        waits for the writes of its own connection, and a connection that wrote nothing
        has nothing to wait for. A replica whose link is up may still lag: right after
        the cluster is made, one was seen holding none of a second's writes.)"""
        info = self.ask(port, "INFO", "replication")
        written = _field(info, "master_repl_offset")
        replicas = [
            int(part.split("=", 1)[1])
            for line in info.splitlines()
            if line.partition(":")[0].removeprefix("slave").isdigit()
            for part in line.split(":", 1)[1].split(",")
            if part.startswith("port=")
        ]
        if written is None or not replicas:
            return False
        deadline = time.monotonic() + timeout
        while True:
            applied = [
                _field(self.ask(r, "INFO", "replication"), "slave_repl_offset") for r in replicas
            ]
            if all(a is not None and a >= written for a in applied):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def freeze(self, port: int) -> None:
        """Stop a node (SIGSTOP): it keeps its sockets open and answers nothing."""
        os.kill(self.processes[port].pid, signal.SIGSTOP)
        self.frozen.add(port)

    def thaw(self, port: int) -> None:
        os.kill(self.processes[port].pid, signal.SIGCONT)
        self.frozen.discard(port)

    def kill(self, port: int) -> None:
        """``kill -9`` one node: a crash."""
        stop_process(self.processes[port])

    def client(self, **options: Any) -> Any:
        """A redis-py cluster client whose ``close()`` also closes its node connections
        (redis-py's leaves them to the collector, which warns)."""
        import redis.cluster

        class Client(redis.cluster.RedisCluster):
            def close(self) -> None:
                nodes = self.get_nodes()
                super().close()
                for node in nodes:
                    if node.redis_connection is not None:
                        node.redis_connection.connection_pool.disconnect()

        return Client(host="127.0.0.1", port=self.ports[0], **options)

    def stop(self) -> None:
        """Stop every node by its pid (thawed first) and remove their files."""
        for port, process in list(self.processes.items()):
            if port in self.frozen and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
            stop_process(process)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def alive(self) -> bool:
        """Whether every node runs."""
        return len(self.live()) == len(self.ports)


_shared = Shared(missing, lambda: RedisCluster().start())


def shared_cluster() -> RedisCluster:
    """The session's cluster, started on first use (skips the test when Redis is absent)."""
    return _shared.get()


def _field(info: str, name: str) -> int | None:
    """The integer field ``name`` of an ``INFO`` reply, or ``None`` when it is missing."""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key == name and value.strip().lstrip("-").isdigit():
            return int(value)
    return None

"""The reference StatsD daemon (npm ``statsd``) on free loopback ports, for integration tests."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (
    os.environ.get("RESILIENT_STATSD_JS", ""),
    str(ROOT / ".ci" / "node" / "node_modules" / "statsd" / "stats.js"),
    str(ROOT / "node_modules" / "statsd" / "stats.js"),
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StatsdDaemon:
    """A running daemon: send to ``port`` (UDP), read back through the management port."""

    def __init__(self, port: int, tcp_port: int, mgmt_port: int) -> None:
        self.port = port
        self.tcp_port = tcp_port
        self.mgmt_port = mgmt_port

    def ask(self, command: str) -> str:
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=5) as conn:
            conn.sendall(command.encode() + b"\n")
            data = b""
            while b"END" not in data and not (command == "health" and b"\n" in data):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def settle(self, metrics_expected: int, timeout: float = 5.0) -> None:
        """Wait until the daemon has parsed ``metrics_expected`` lines (UDP is asynchronous)."""
        deadline = time.monotonic() + timeout
        while self.counters().get("statsd.metrics_received", 0) < metrics_expected:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def counters(self) -> dict[str, float]:
        return {k: float(v) for k, v in _pairs(self.ask("counters"))}

    def gauges(self) -> dict[str, float]:
        return {k: float(v) for k, v in _pairs(self.ask("gauges"))}

    def timer_counts(self) -> dict[str, int]:
        """How many values each timer holds (the daemon prints long lists truncated)."""
        text = self.ask("timers")
        found: dict[str, int] = {}
        for key, values in re.findall(r"'?([\w.;=\-<>]+)'?: \[([^\]]*)\]", text):
            more = re.search(r"\.\.\. (\d+) more item", values)
            shown = re.sub(r"\.\.\. \d+ more items?", "", values)
            found[key] = len(re.findall(r"-?\d[\d.e+-]*", shown)) + (int(more[1]) if more else 0)
        return found


def _pairs(text: str) -> list[tuple[str, str]]:
    return re.findall(r"'?([\w.;=\-]+)'?: (-?[\d.e]+)", text)


def find_daemon() -> tuple[str, str] | None:
    """``(node, stats.js)`` when the reference daemon is installed, else ``None``."""
    node = shutil.which("node")
    script = next((c for c in CANDIDATES if c and Path(c).is_file()), None)
    return (node, script) if node is not None and script is not None else None


@contextmanager
def running_daemon(node: str, script: str, folder: Path) -> Iterator[StatsdDaemon]:
    """Start the daemon (UDP, TCP and management ports free on loopback); stop it by pid."""
    port, tcp_port, mgmt_port = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    config = folder / "statsd.js"
    config.write_text(
        f'{{ servers: [{{ server: "./servers/udp", address: "127.0.0.1", port: {port} }}, '
        f'{{ server: "./servers/tcp", address: "127.0.0.1", port: {tcp_port} }}], '
        f'mgmt_port: {mgmt_port}, mgmt_address: "127.0.0.1", backends: [], '
        "flushInterval: 3600000 }"
    )
    process = subprocess.Popen(
        [node, script, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        daemon = StatsdDaemon(port, tcp_port, mgmt_port)
        deadline = time.monotonic() + 10
        while True:
            try:
                daemon.ask("health")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the StatsD daemon did not start") from None
                time.sleep(0.05)
        yield daemon
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

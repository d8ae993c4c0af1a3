"""What the sink tests send to: a UDP socket standing in for StatsD, and the reference
StatsD daemon."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from statsd_daemon import StatsdDaemon, find_daemon, running_daemon


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    """A UDP socket on loopback standing in for a StatsD daemon (reads time out after 2 s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


@pytest.fixture
def statsd_daemon(tmp_path: Path) -> Iterator[StatsdDaemon]:
    """Start the reference daemon (``.ci/run`` installs it); skip with a reason if absent."""
    found = find_daemon()
    if found is None:
        pytest.skip(
            "the reference StatsD daemon is not installed: needs node and "
            "`npm install --prefix .ci/node statsd` (what .ci/run does)"
        )
    with running_daemon(*found, tmp_path) as daemon:
        yield daemon

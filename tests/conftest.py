"""The suite's shared fixtures, in one place; resilient's own pytest plugin provides the rest.

From the plugin (``resilient_pytest``, as users get it): fresh global state around every
test, ``fake_clock`` (virtual time for the decorators and the test's event loop),
``resilient_metrics``, ``resilient_store``, ``breakers`` and the markers. Here: the servers
the integration tests talk to (Redis, a Redis Cluster, StatsD, a scripted HTTP server), a
UDP socket standing in for StatsD, the metrics ``sink`` and ``make_store``, which runs a
breaker test once per store.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from http_servers import ScriptedServer, running
from hypothesis import settings
from redis_cluster import RedisCluster, shared_cluster
from redis_cluster import missing as missing_cluster
from redis_server import RedisServer, free_port, missing, owned, shared_server
from statsd_daemon import StatsdDaemon, find_daemon, running_daemon

from resilient.stores import MemoryStore
from resilient.typing import StateStore

if TYPE_CHECKING:
    from resilient.metrics import MemorySink
    from resilient_pytest import MetricsRecorder

# The plugin is loaded by its entry point when resilient is installed; from a checkout
# without it, the conftest loads it.
_INSTALLED = any(ep.value == "resilient_pytest" for ep in entry_points(group="pytest11"))
pytest_plugins = () if _INSTALLED else ("resilient_pytest",)

# Under CI, hypothesis loads its own "ci" profile, which is derandomized: the same examples on
# every run. .ci/run also runs the suite with ``--hypothesis-profile=random`` so that each CI
# run explores new examples; a failure prints the blob that reproduces it.
settings.register_profile("random", derandomize=False, database=None, print_blob=True)


@pytest.fixture
def sink(resilient_metrics: MetricsRecorder) -> MemorySink:
    """The plugin's memory sink, installed as the metrics sink for the test."""
    return resilient_metrics.sink


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


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server on a free loopback port, for the HTTP client's tests."""
    yield from running()


@pytest.fixture
def redis_server() -> RedisServer:
    """The shared server; use a ``unique_prefix()`` for the keys."""
    return shared_server()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A server of this test's own, free to be killed and restarted."""
    yield from owned(missing, lambda: RedisServer().start())


@pytest.fixture
def replica_redis_server() -> Iterator[RedisServer]:
    """A read-only replica whose master never answers: reads work, writes get READONLY."""
    yield from owned(
        missing, lambda: RedisServer("--replicaof", "127.0.0.1", str(free_port())).start()
    )


@pytest.fixture
def redis_cluster() -> RedisCluster:
    """The session's cluster; use a ``unique_prefix()`` for the keys, hurt no node."""
    return shared_cluster()


@pytest.fixture
def own_redis_cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own, whose nodes it may freeze or kill."""
    yield from owned(missing_cluster, lambda: RedisCluster().start())


STORES = [
    pytest.param(MemoryStore, id="memory"),
    # The Redis stores, against a real redis-server (tests/redis_server.py; skipped with
    # the reason when it is not installed). They run on the breaker's clock
    # (clock="local"), so the FakeClock drives them like MemoryStore.
    pytest.param("redis", id="redis"),
    pytest.param("aredis", id="aredis"),
]

# Tests that stay on the in-memory stores, and why.
REDIS_SKIPS = {
    # Tens of thousands of script calls from 8 threads: seconds of round trips, for rules
    # the model test already checks call by call against the Redis stores.
    "test_rate_counts_are_exact_under_threads": "80,000 script round trips: too slow here",
    "test_consecutive_counts_under_threads": "16,000 script round trips: too slow here",
    # AsyncRedisStore awaits the network where MemoryStore answers at once; this test
    # counts event-loop turns (tests/test_redis_fleet.py covers a half-open herd).
    "test_a_thousand_tasks_in_half_open_send_exactly_the_probes[aredis]": (
        "counts event-loop turns, AsyncRedisStore awaits the network"
    ),
}


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], StateStore]]:
    """A factory of fresh, empty stores of one kind: a test taking it runs once per store."""
    if not isinstance(request.param, str):
        factory: Callable[[], StateStore] = request.param
        yield factory
        return
    test = request.function.__name__
    reason = REDIS_SKIPS.get(test) or REDIS_SKIPS.get(f"{test}[{request.param}]")
    if reason is not None:
        pytest.skip(reason)
    from redis_server import redis_stores

    with redis_stores(shared_server(), asynchronous=request.param == "aredis") as factory:
        yield factory

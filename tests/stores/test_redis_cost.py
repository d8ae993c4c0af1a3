"""What the Redis stores cost, on one server and on a cluster: round trips per call,
messages per failure, and re-reads that stay with the breakers in use."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis_cluster import missing as cluster_missing
from redis_cluster import shared_cluster
from redis_server import eventually, fail, missing, shared_server, unique_prefix

from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient.testing import FakeClock

if missing() is None:
    from resilient.stores.redis import RedisStore

THREE = BreakerConfig(failure_threshold=3, reset_timeout=30.0)
WAIT = 5.0


class Backend:
    """One server or one cluster: its URL, and how many times each command ran on it."""

    def __init__(self, url: str, nodes: list[Any]) -> None:
        self.url = url
        self.nodes = nodes

    def calls(self, command: str) -> int:
        total = 0
        for node in self.nodes:
            stats = node.info("commandstats")
            total += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
        return total

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@pytest.fixture(params=["server", "cluster"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The session's single server, then the session's cluster (its masters)."""
    import redis

    if request.param == "server":
        server = shared_server()
        found = Backend(server.url, [redis.Redis.from_url(server.url)])
    else:
        why = cluster_missing()
        if why is not None:
            pytest.skip(why)
        cluster = shared_cluster()
        nodes = [redis.Redis(host="127.0.0.1", port=port) for port in cluster.masters()]
        found = Backend(cluster.url, nodes)
    yield found
    found.close()


@pytest.fixture
def make(backend: Backend) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []
    prefix = unique_prefix()

    def factory(**options: Any) -> Any:
        options.setdefault("prefix", prefix)
        store = RedisStore(backend.url, **options)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


def test_calls_rejected_while_a_probe_is_out_elsewhere_make_no_round_trip(
    make: Callable[..., Any], backend: Backend, fake_clock: FakeClock
) -> None:
    """While another process holds the only probe of a half-open breaker, 200 calls here
    are rejected from the cached state (lease and expiry known locally): at most one
    script call for all of them."""
    here_store, there_store = make(clock="local"), make(clock="local")
    here = CircuitBreaker("svc", THREE, store=here_store)
    there = CircuitBreaker("svc", THREE, store=there_store)
    fail(here, 3)
    assert eventually(lambda: there_store.get("svc").mode is BreakerMode.OPEN)
    fake_clock.advance(31.0)
    spent: list[int] = []

    def probe() -> None:
        assert eventually(lambda: there_store.get("svc").mode is BreakerMode.HALF_OPEN)
        before = backend.calls("evalsha")
        for _ in range(200):
            with pytest.raises(CircuitOpenError):
                there.call(lambda: None)
        spent.append(backend.calls("evalsha") - before)

    here.call(probe)
    assert spent[0] <= 1
    assert eventually(lambda: there_store.get("svc").mode is BreakerMode.CLOSED)


def test_healthy_calls_make_no_round_trip(make: Callable[..., Any], backend: Backend) -> None:
    """1,000 successful calls on a closed breaker send nothing to Redis."""
    store = make()
    b = CircuitBreaker("svc", THREE, store=store)
    assert store.listening.wait(WAIT)
    before = backend.calls("evalsha")
    for _ in range(1000):
        b.call(lambda: None)
    assert backend.calls("evalsha") - before == 0


def test_only_changes_of_state_are_announced(make: Callable[..., Any], backend: Backend) -> None:
    """Failures that do not open the breaker publish nothing (the count travels in the
    script's reply); the failure that opens it publishes one message."""
    store = make()
    b = CircuitBreaker("svc", THREE, store=store)
    assert store.listening.wait(WAIT)
    before = backend.calls("publish")
    fail(b, 2)
    assert b.failures == 2
    assert backend.calls("publish") == before
    fail(b)
    assert b.mode is BreakerMode.OPEN
    assert backend.calls("publish") == before + 1


@pytest.mark.realtime
def test_the_listener_rereads_only_breakers_in_use(
    make: Callable[..., Any], backend: Backend
) -> None:
    """With 300 idle breakers and one in use, the periodic re-read reads the one in use
    (and the idle ones once, when they were made), not all 300 every cache_ttl."""
    store = make(cache_ttl=0.02)
    for i in range(300):
        CircuitBreaker(f"idle{i}", THREE, store=store)
    busy = CircuitBreaker("busy", THREE, store=store)
    assert store.listening.wait(WAIT)
    fail(busy)
    time.sleep(0.06)  # a few periodic re-reads: the first one after the breakers were made
    before = backend.calls("hmget")
    time.sleep(0.1)  # five more
    assert backend.calls("hmget") - before < 50


def test_released_breakers_leave_the_cache_and_are_found_again(
    make: Callable[..., Any],
) -> None:
    """release() lets go of idle breakers (not of one counting failures); one still held
    keeps following the fleet, and asking for it again lists it and reads it."""
    here, there = make(), make()
    idle = CircuitBreaker("idle", THREE, store=here)
    counting = CircuitBreaker("counting", THREE, store=here)
    # A released breaker is no longer re-read, so it follows the fleet by messages alone:
    # the listener must be subscribed before the trip elsewhere is announced.
    assert here.listening.wait(WAIT)
    fail(counting)
    assert here.release(["idle", "counting", "unknown"]) == 1
    assert here.names() == ["counting"]
    fail(CircuitBreaker("idle", THREE, store=there), 3)
    assert eventually(lambda: idle.mode is BreakerMode.OPEN)  # held: messages still reach it
    assert here.get("idle").mode is BreakerMode.OPEN
    assert here.names() == ["counting", "idle"]

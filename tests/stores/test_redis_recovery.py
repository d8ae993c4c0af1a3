"""A breaker state Redis loses (a Redis Cluster failover to a replica its last writes
had not reached, a restart without persistence) is not taken for a breaker that moved
on: a store that read an open breaker keeps rejecting until it is due to reopen.

The key is deleted, or the server restarted empty, under a store that follows it; the
server is the test's own, so the re-reads counted on it are that store's alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_server import RedisServer, command_calls, eventually, fail, missing, unique_prefix

from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient.testing import FakeClock

if missing() is None:
    from resilient.stores.redis import AsyncRedisStore, RedisStore

pytestmark = pytest.mark.realtime

THREE = BreakerConfig(failure_threshold=3, reset_timeout=30.0)
FAST = {"cache_ttl": 0.02, "retry_interval": 0.01}  # re-read every 20 ms, retry every 10 ms


def reads_after(client: Any, count: int) -> bool:
    """Wait until the server has run ``count`` more HMGETs (the listener's re-reads)."""
    before = command_calls(client).get("hmget", 0)
    return eventually(lambda: command_calls(client).get("hmget", 0) >= before + count)


def unreached() -> None:
    raise AssertionError("an open breaker let a call through")


async def aunreached() -> None:
    raise AssertionError("an open breaker let a call through")


def test_an_open_breaker_whose_key_redis_lost_keeps_rejecting(
    own_redis_server: RedisServer,
) -> None:
    """An open breaker's key deleted under a store that read it: the store's re-reads
    find no state, and the breaker still rejects every call."""
    client: Any = own_redis_server.client()
    store = RedisStore(own_redis_server.url, prefix=unique_prefix(), **FAST)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b, 3)
        assert b.opened
        client.delete(store.key("svc"))
        assert reads_after(client, 3)
        assert store.get("svc").mode is BreakerMode.OPEN
        with pytest.raises(CircuitOpenError):
            b.call(unreached)
    finally:
        store.close()


async def test_an_async_store_keeps_an_open_breaker_redis_lost(
    own_redis_server: RedisServer,
) -> None:
    """The same for AsyncRedisStore: its listener's re-reads find no state, and its
    breaker still rejects awaited calls."""
    client: Any = own_redis_server.client()
    store = AsyncRedisStore(own_redis_server.url, prefix=unique_prefix(), **FAST)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await b.acall(_afail)
        assert b.opened
        client.delete(store.key("svc"))
        assert reads_after(client, 3)
        assert store.get("svc").mode is BreakerMode.OPEN
        with pytest.raises(CircuitOpenError):
            await b.acall(aunreached)
    finally:
        await store.aclose()


async def _afail() -> None:
    raise RuntimeError("down")


def test_an_open_breaker_outlives_a_restart_that_emptied_redis(
    own_redis_server: RedisServer,
) -> None:
    """Redis killed and restarted empty while a store follows an open breaker: once the
    store is back on Redis and has read it again, the breaker still rejects."""
    store = RedisStore(own_redis_server.url, prefix=unique_prefix(), **FAST)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b, 3)
        assert b.opened
        own_redis_server.kill()
        own_redis_server.start()  # same port, empty
        client: Any = own_redis_server.client()
        assert eventually(lambda: store.reachable)
        assert reads_after(client, 3)
        assert b.opened
        with pytest.raises(CircuitOpenError):
            b.call(unreached)
    finally:
        store.close()


def test_a_lost_open_state_gives_way_once_the_breaker_is_due_to_reopen(
    own_redis_server: RedisServer, fake_clock: FakeClock
) -> None:
    """Past its reset timeout, the breaker Redis lost asks Redis, which holds nothing: the
    call goes through and the breaker follows Redis again, closed."""
    client: Any = own_redis_server.client()
    store = RedisStore(own_redis_server.url, prefix=unique_prefix(), clock="local", **FAST)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b, 3)
        client.delete(store.key("svc"))
        assert reads_after(client, 3)
        assert b.opened
        fake_clock.advance(30)
        assert b.call(lambda: "ok") == "ok"
        assert b.snapshot().mode is BreakerMode.CLOSED
    finally:
        store.close()

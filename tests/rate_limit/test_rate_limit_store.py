"""``@rate_limit(store=...)`` in one process: leases from a real Redis (one server and a
Cluster), and a Redis that cannot be reached."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis_cluster import missing as cluster_missing
from redis_cluster import shared_cluster
from redis_server import missing, shared_server, unique_prefix

import resilient as rs
from resilient.metrics import MemorySink
from resilient.stores import AsyncRedisStore, MemoryStore, RedisStore
from resilient.testing import FakeClock

needs_redis = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def test_a_memory_store_keeps_the_limit_in_this_process(fake_clock: FakeClock) -> None:
    """``store=MemoryStore()`` is a local limit: nothing to share it with."""
    limiter = rs.rate_limit(1, burst=1, mode="reject", name="mem", store=MemoryStore())

    @limiter
    def call() -> int:
        return 1

    assert call() == 1
    assert type(rs.get_rate_limiter("mem")) is rs.RateLimiter


@needs_redis
def test_a_lease_takes_a_batch_and_calls_spend_it_without_round_trips() -> None:
    """One script call leases the tokens the fleet earns in 0.1 s; the calls after it
    spend them without asking Redis; the key is hash-tagged by the limit's name."""
    store = RedisStore(shared_server().url, prefix=unique_prefix())
    try:

        @rs.rate_limit(100, burst=100, name="batch", store=store)
        def call() -> int:
            return 1

        assert [call() for _ in range(10)] == [1] * 10
        limiter: Any = rs.get_rate_limiter("batch")
        assert (limiter.batch, limiter.leases, limiter.tokens) == (10, 1, 0)
        call()
        assert limiter.leases == 2
        assert store.lease_key("batch") == f"{store.prefix}:{{ratelimit:batch}}:tat"
    finally:
        store.close()


@needs_redis
def test_the_fleet_bucket_refuses_what_another_process_took() -> None:
    """Two stores (two processes' worth) share one bucket: once one has leased the burst,
    the other is refused with the wait until the next token."""
    prefix = unique_prefix()
    mine, theirs = (RedisStore(shared_server().url, prefix=prefix) for _ in range(2))
    try:
        granted = theirs.lease_tokens("shared", 1.0, 3, 3, 0.0)
        assert granted == (3, 0.0)

        @rs.rate_limit(1, burst=3, mode="reject", name="shared", store=mine)
        def call() -> int:
            return 1

        with pytest.raises(rs.RateLimitedError) as caught:
            call()
        assert 0.0 < caught.value.retry_after <= 1.0
    finally:
        mine.close()
        theirs.close()


@needs_redis
def test_a_lease_reserved_ahead_waits_for_its_last_token() -> None:
    """With nothing free and time to wait, a lease reserves its batch ahead and says how
    long until the last token of it is earned."""
    store = RedisStore(shared_server().url, prefix=unique_prefix())
    try:
        assert store.lease_tokens("ahead", 0.5, 2, 2, 0.0) == (2, 0.0)
        granted, wait = store.lease_tokens("ahead", 0.5, 2, 2, float("inf")) or (0, 0.0)
        assert granted == 2
        assert 0.9 < wait <= 1.0
        assert store.lease_tokens("ahead", 0.5, 2, 2, 0.2)[0] == 0  # type: ignore[index]
    finally:
        store.close()


@needs_redis
async def test_async_calls_lease_through_the_asyncio_client() -> None:
    """An ``AsyncRedisStore`` leases in coroutines through ``redis.asyncio``."""
    store = AsyncRedisStore(shared_server().url, prefix=unique_prefix())
    try:

        @rs.rate_limit(50, burst=50, name="aio", store=store)
        async def call() -> int:
            return 1

        assert [await call() for _ in range(6)] == [1] * 6
        limiter: Any = rs.get_rate_limiter("aio")
        assert (limiter.batch, limiter.leases) == (5, 2)
    finally:
        await store.aclose()


def test_an_unreachable_redis_falls_back_to_a_local_bucket(
    fake_clock: FakeClock, sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis down the limit holds in this process alone: calls go on within the
    local bucket, the outage is logged once and each lease not made counts
    ``store_errors_total``."""
    store = RedisStore("redis://127.0.0.1:1/0", check=False, timeout=0.05, retry_interval=30)
    try:

        @rs.rate_limit(2, burst=2, mode="reject", name="down", store=store)
        def call() -> int:
            return 1

        with caplog.at_level(logging.WARNING, logger="resilient"):
            assert [call(), call()] == [1, 1]
            with pytest.raises(rs.RateLimitedError) as caught:
                call()
        assert caught.value.retry_after == pytest.approx(0.5)
        assert sink.counter("store_errors_total") == 3
        lines = [r.getMessage() for r in caplog.records if "rate limits" in r.getMessage()]
        assert len(lines) == 1
        assert "local bucket" in lines[0]
    finally:
        store.close()


@pytest.mark.cluster
@pytest.mark.skipif(cluster_missing() is not None, reason=str(cluster_missing()))
def test_a_cluster_keeps_one_limit_on_one_slot() -> None:
    """On a Redis Cluster the lease script runs on the master of the limit's slot."""
    cluster = shared_cluster()
    store = RedisStore(cluster.url, prefix=unique_prefix())
    try:
        assert store.lease_tokens("c", 0.01, 10, 10, 0.0) == (10, 0.0)
        assert store.lease_tokens("c", 0.01, 10, 10, 0.0)[0] == 0  # type: ignore[index]
        assert cluster.serves(store.lease_key("c"))
    finally:
        store.close()


@needs_redis
async def test_tasks_wait_for_the_lease_in_flight() -> None:
    """200 tasks finding no token make one lease per batch between them, not one each."""
    import asyncio

    store = AsyncRedisStore(shared_server().url, prefix=unique_prefix())
    try:

        @rs.rate_limit(1000, burst=1000, name="crowd", store=store)
        async def call() -> int:
            return 1

        assert sum(await asyncio.gather(*(call() for _ in range(200)))) == 200
        limiter: Any = rs.get_rate_limiter("crowd")
        assert limiter.leases == 200 // limiter.batch
    finally:
        await store.aclose()


@needs_redis
def test_threads_wait_for_the_lease_in_flight() -> None:
    """8 threads x 50 calls make one lease per batch between them (give or take the
    batches they finish with), not one per thread that found the pool empty."""
    import threading

    store = RedisStore(shared_server().url, prefix=unique_prefix())
    try:

        @rs.rate_limit(1000, burst=1000, name="threads-fleet", store=store)
        def call() -> int:
            return 1

        threads = [threading.Thread(target=lambda: [call() for _ in range(50)]) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        limiter: Any = rs.get_rate_limiter("threads-fleet")
        assert limiter.leases <= 400 // limiter.batch + 1
    finally:
        store.close()


def test_a_forked_child_does_not_spend_the_parents_leased_tokens() -> None:
    """After a fork, the child starts with no leased tokens and locks of its own."""
    from resilient._rate_limit import registry

    class Leases:
        def lease_tokens(self, *args: object) -> tuple[int, float]:
            return (10, 0.0)

    @rs.rate_limit(100, name="forked", store=Leases())
    def call() -> int:
        return 1

    call()
    limiter: Any = rs.get_rate_limiter("forked")
    assert limiter.tokens == 9
    lock = limiter.parts()[0]
    registry._after_fork_in_child()
    assert limiter.tokens == 0
    assert limiter.parts()[0] is not lock


class ScriptedLeases:
    """A store answering each lease with the next of ``answers`` (and noting the asks)."""

    def __init__(self, *answers: tuple[int, float] | None) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[object, ...]] = []

    def lease_tokens(self, *args: object) -> tuple[int, float] | None:
        self.asked.append(args)
        return self.answers.pop(0)


def test_a_fleet_wait_past_the_deadline_is_refused_at_once(fake_clock: FakeClock) -> None:
    """When the fleet's next token comes after the deadline, the call is refused without
    waiting, and the lease asked Redis to reserve nothing that far ahead."""
    store = ScriptedLeases((0, 2.0))

    @rs.timeout(1.0)
    @rs.rate_limit(10, name="fleet-deadline", store=store)
    def call() -> int:
        return 1

    with pytest.raises(rs.RateLimitedError) as caught:
        call()
    assert caught.value.retry_after == 2.0
    assert fake_clock.monotonic() == 0.0
    assert store.asked[0][-1] == pytest.approx(1.0)  # the patience sent with the lease


def test_a_lease_reserved_ahead_is_waited_for_on_the_clock(fake_clock: FakeClock) -> None:
    """A batch granted for later is waited for (on the clock), then spent without leasing."""
    store = ScriptedLeases((3, 0.5))

    @rs.rate_limit(10, name="fleet-ahead", store=store)
    def stamp() -> float:
        return fake_clock.monotonic()

    assert [stamp(), stamp(), stamp()] == [0.5, 0.5, 0.5]
    assert len(store.asked) == 1


def test_a_fleet_refusal_waits_and_leases_again(fake_clock: FakeClock) -> None:
    """In wait mode, a lease granting nothing is retried after the wait it names."""
    store = ScriptedLeases((0, 0.25), (1, 0.0))

    @rs.rate_limit(10, name="fleet-again", store=store)
    def stamp() -> float:
        return fake_clock.monotonic()

    assert stamp() == 0.25
    assert len(store.asked) == 2

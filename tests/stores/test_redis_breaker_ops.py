"""Operating a breaker by hand and reconfiguring it, with its state in Redis: a single
node and a Redis Cluster, RedisStore and AsyncRedisStore.

Two stores with one prefix stand for two processes of a fleet; they run on the test's
FakeClock (``clock="local"``), so a forced period ends when the test says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis_server import eventually, fail, stores_on
from strategies import BoomError

from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient.testing import FakeClock

FIVE = BreakerConfig(failure_threshold=5, reset_timeout=30.0)


def ok() -> str:
    return "ok"


async def aok() -> str:
    return "ok"


@pytest.fixture(params=["single", "cluster"])
def make(request: pytest.FixtureRequest, fake_clock: FakeClock) -> Iterator[Callable[..., Any]]:
    """``make(kind=RedisStore, **options)``: a store of this test's fleet, on the fake clock,
    on a single Redis server or on the Redis Cluster."""
    if request.param == "single":
        url = request.getfixturevalue("redis_server").url
    else:
        url = request.getfixturevalue("redis_cluster").url
    factory = stores_on(url)
    make_store = next(factory)

    def made(kind: Any = None, **options: Any) -> Any:
        options.setdefault("clock", "local")
        return make_store(kind, **options)

    yield made
    next(factory, None)


def test_force_open_for_a_while_reaches_the_fleet_and_ends_by_itself(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """force_open(for_=10) in one process rejects in another for 10 s, then it probes."""
    here = CircuitBreaker("ops-forced", FIVE, store=make())
    there = CircuitBreaker("ops-forced", FIVE, store=make())
    here.force_open(for_=10)
    assert eventually(lambda: there.snapshot().mode is BreakerMode.FORCED_OPEN)
    with pytest.raises(CircuitOpenError) as caught:
        there.call(ok)
    assert caught.value.retry_after == pytest.approx(10.0)
    fake_clock.advance(10)
    assert there.call(ok) == "ok"  # the probe
    assert eventually(lambda: here.snapshot().mode is BreakerMode.CLOSED)


def test_force_open_without_a_duration_never_expires_in_redis(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """A breaker forced open until reset keeps rejecting in every process."""
    store = make()
    here = CircuitBreaker("ops-forever", FIVE, store=store)
    here.force_open()
    fake_clock.advance(10**6)
    there = CircuitBreaker("ops-forever", FIVE, store=make())
    assert eventually(lambda: there.snapshot().mode is BreakerMode.FORCED_OPEN)
    with pytest.raises(CircuitOpenError) as caught:
        there.call(ok)
    assert caught.value.retry_after is None
    assert store.get("ops-forever").mode is BreakerMode.FORCED_OPEN


async def test_half_open_by_hand_reaches_the_fleet(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """half_open() in one process lets another's next (async) call probe and close it."""
    from resilient.stores.redis import AsyncRedisStore

    store = make(AsyncRedisStore)
    here = CircuitBreaker("ops-half", FIVE, store=make())
    there = CircuitBreaker("ops-half", FIVE, store=store)
    try:
        fail(here, 5)
        assert eventually(lambda: there.snapshot().mode is BreakerMode.OPEN)
        here.half_open()
        assert eventually(lambda: there.snapshot().mode is BreakerMode.HALF_OPEN)
        assert await there.acall(aok) == "ok"
        assert eventually(lambda: here.snapshot().mode is BreakerMode.CLOSED)
    finally:
        await store.aclose()  # in this loop: its connections belong to it


def test_reconfigure_applies_to_the_next_script_call_with_the_shared_counts(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """One process lowers its threshold: its next failure trips on the fleet's count."""
    here = CircuitBreaker("ops-reconf", FIVE, store=make())
    there = CircuitBreaker("ops-reconf", FIVE, store=make())
    fail(there, 2)
    here.reconfigure(failure_threshold=3)
    assert there.config.failure_threshold == 5  # each process keeps its own config
    fail(here, 1)
    assert here.snapshot().mode is BreakerMode.OPEN
    assert eventually(lambda: there.snapshot().mode is BreakerMode.OPEN)


async def test_reconfigure_with_an_async_store_keeps_the_open_state(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """AsyncRedisStore: a reconfigured open breaker stays open; the probe uses new rules."""
    from resilient.stores.redis import AsyncRedisStore

    store = make(AsyncRedisStore)
    b = CircuitBreaker(
        "ops-reconf-async", BreakerConfig(failure_threshold=1, reset_timeout=30), store=store
    )

    async def afail() -> None:
        raise BoomError

    try:
        with pytest.raises(BoomError):
            await b.acall(afail)
        b.reconfigure(reset_timeout=5, success_threshold=2)
        assert b.mode is BreakerMode.OPEN
        fake_clock.advance(30)
        assert await b.acall(aok) == "ok"
        assert b.mode is BreakerMode.HALF_OPEN  # two probe successes needed now
        assert await b.acall(aok) == "ok"
        assert b.mode is BreakerMode.CLOSED
    finally:
        await store.aclose()


def test_last_failure_is_kept_by_the_process_that_saw_it(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """The error object stays in its process: another process sees the count, not the error."""
    here = CircuitBreaker("ops-last", FIVE, store=make())
    there = CircuitBreaker("ops-last", FIVE, store=make())
    fail(here, 2)
    assert here.last_failure is not None
    assert here.last_failure.type == "strategies.BoomError"
    assert eventually(lambda: there.failures == 2 or there.snapshot().failures == 2)
    assert there.last_failure is None


def test_the_tripping_call_raises_circuit_open_with_a_redis_store(
    make: Callable[..., Any], fake_clock: FakeClock
) -> None:
    """error_on_trip="open" works when Redis decides the trip."""
    config = BreakerConfig(failure_threshold=2, error_on_trip="open")
    b = CircuitBreaker("ops-trip-open", config, store=make())

    def boom() -> None:
        raise BoomError

    with pytest.raises(BoomError):
        b.call(boom)
    with pytest.raises(CircuitOpenError) as caught:
        b.call(boom)
    assert isinstance(caught.value.__cause__, BoomError)


def test_forced_periods_on_the_servers_clock(make: Callable[..., Any]) -> None:
    """With clock="redis" (times moved from the server's clock to this process's), a breaker
    forced open until reset stays so, and one forced open for a while says how long."""
    forever = CircuitBreaker("ops-server-forever", FIVE, store=make(clock="redis"))
    forever.force_open()
    with pytest.raises(CircuitOpenError) as caught:
        forever.call(ok)
    assert caught.value.retry_after is None
    assert forever.mode is BreakerMode.FORCED_OPEN
    awhile = CircuitBreaker("ops-server-awhile", FIVE, store=make(clock="redis"))
    awhile.force_open(for_=300)
    with pytest.raises(CircuitOpenError) as later:
        awhile.call(ok)
    assert later.value.retry_after == pytest.approx(300, abs=5)

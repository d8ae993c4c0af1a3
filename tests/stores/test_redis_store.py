"""RedisStore and AsyncRedisStore against a real server: round trips, sharing, outages.

Two stores with one prefix stand for two processes of a fleet (each has its own cells,
connections and listener thread); tests/stores/test_redis_fleet.py uses real processes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import (
    RedisServer,
    eventually,
    fail,
    free_port,
    missing,
    stores_on,
)
from redis_server import command_calls as commands
from strategies import BoomError

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient._degradation import DegradationService, Feature, Features
from resilient.metrics import MemorySink

if missing() is None:
    from resilient.stores.redis import AsyncRedisStore, RedisStore

THREE = BreakerConfig(failure_threshold=3, reset_timeout=30.0)
WAIT = 5.0  # seconds a test waits for something that should take milliseconds
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Callable[..., Any]]:
    """``make(**options)``: a RedisStore on the shared server; one prefix per test (all
    stores of a test are one fleet), closed at the end."""
    yield from stores_on(redis_server.url)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What ran between two ``commands`` readings, the first reading's INFO excluded."""
    changed = {k: after[k] - before.get(k, 0) for k in after}
    changed["info"] -= 1
    return {k: v for k, v in changed.items() if v}


# --- round trips ---------------------------------------------------------------------


def test_a_healthy_breaker_sends_nothing_and_a_failure_one_script(
    own_redis_server: RedisServer,
) -> None:
    """Successes on a closed breaker make no round trip; each failure is one EVALSHA."""
    store = RedisStore(own_redis_server.url, cache_ttl=60.0)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        assert store.listening.wait(WAIT)
        fail(b)  # loads the script once
        b.call(lambda: None)
        probe: Any = own_redis_server.client()
        before = commands(probe)
        for _ in range(2000):
            b.call(lambda: None)
        assert delta(before, commands(probe)) == {}
        before = commands(probe)
        fail(b, 2)
        changed = delta(before, commands(probe))
        assert changed.pop("evalsha") == 2
        # Everything else ran inside the two scripts: one read, one clock read each.
        assert changed["hmget"] == changed["time"] == 2
        assert set(changed) <= {"hmget", "time", "hset", "pexpire", "publish"}
        assert b.failures == 2  # the success in between ended the first run
    finally:
        store.close()


# --- one state for the fleet -----------------------------------------------------------


def test_a_change_reaches_every_process_without_waiting_for_the_cache(
    make: Callable[..., Any],
) -> None:
    """A trip in one process shows in another's cell through pub/sub (cache_ttl is 60 s)."""
    a, b = make(cache_ttl=60.0), make(cache_ttl=60.0)
    here, there = CircuitBreaker("svc", THREE, store=a), CircuitBreaker("svc", THREE, store=b)
    assert b.listening.wait(WAIT)
    fail(here, 3)
    assert here.snapshot().mode is BreakerMode.OPEN
    assert eventually(lambda: there.snapshot().mode is BreakerMode.OPEN)
    with pytest.raises(CircuitOpenError):
        there.call(lambda: None)


def test_failures_anywhere_count_toward_one_threshold(make: Callable[..., Any]) -> None:
    """Two failures here and one there open the breaker for both (fleet-wide threshold)."""
    a, b = make(), make()
    here, there = CircuitBreaker("svc", THREE, store=a), CircuitBreaker("svc", THREE, store=b)
    fail(here, 2)
    fail(there)
    assert here.opened or eventually(lambda: here.opened)
    assert there.opened


def test_the_cache_is_read_again_every_cache_ttl(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """A change that no message announced (written by hand) shows within cache_ttl."""
    store = make(cache_ttl=0.1)
    b = CircuitBreaker("svc", THREE, store=store)
    assert store.listening.wait(WAIT)
    client: Any = redis_server.client()
    seconds, micros = client.time()
    version = str(seconds * 1_000_000 + micros)  # newer than anything the cell has seen
    client.hset(store.key("svc"), mapping={"mode": "forced_open", "gen": "9", "version": version})
    started = time.monotonic()
    assert eventually(lambda: b.snapshot().mode is BreakerMode.FORCED_OPEN)
    assert time.monotonic() - started < 1.0


def test_a_new_process_keeps_the_shared_counts(make: Callable[..., Any]) -> None:
    """A process that starts later reads the counts; it never writes the initial state."""
    first = CircuitBreaker("svc", THREE, store=make())
    fail(first, 2)
    late = CircuitBreaker("svc", THREE, store=make())
    assert late.failures == 2
    fail(late)
    assert late.opened


def test_manual_operations_are_fleet_wide(make: Callable[..., Any]) -> None:
    """force_open, disable and reset in one process rule every process."""
    a, b = make(), make()
    here, there = CircuitBreaker("svc", THREE, store=a), CircuitBreaker("svc", THREE, store=b)
    assert b.listening.wait(WAIT)
    here.force_open()
    assert eventually(lambda: there.mode is BreakerMode.FORCED_OPEN)
    here.disable()
    assert eventually(lambda: there.mode is BreakerMode.DISABLED)
    fail(there, 5)  # disabled: nothing is counted
    there.reset()
    assert eventually(lambda: here.mode is BreakerMode.CLOSED and here.failures == 0)


def test_degradation_overrides_are_fleet_wide(make: Callable[..., Any]) -> None:
    """A feature disabled through one process's store is unavailable in every process."""
    a, b = make(cache_ttl=60.0), make(cache_ttl=60.0)
    feature = Features.register(Feature("redis-search", depends_on=("search",)))
    try:
        here, there = DegradationService(store=a), DegradationService(store=b)
        assert there.is_feature_available(feature)  # cached as available in b
        assert b.listening.wait(WAIT)  # reading a flag started b's listener
        here.disable(feature, "maintenance")
        # b's cache entry is dropped by the published change, not by its 60 s expiry.
        assert eventually(lambda: not there.is_feature_available(feature))
        assert there.why_unavailable(feature) == "disabled: maintenance"
        there.enable(feature)
        assert eventually(lambda: here.is_feature_available(feature))
    finally:
        Features._reset()


def test_idle_keys_expire(make: Callable[..., Any], redis_server: RedisServer) -> None:
    """An idle breaker's key lives key_ttl; an open one until it reopens plus key_ttl; a
    forced-open one until reset."""
    store = make(key_ttl=10.0)
    client: Any = redis_server.client()
    b = CircuitBreaker("svc", THREE, store=store)
    assert client.exists(store.key("svc")) == 0  # reading never writes
    fail(b)
    assert 9_000 < client.pttl(store.key("svc")) <= 10_000
    fail(b, 2)
    assert 39_000 < client.pttl(store.key("svc")) <= 40_000
    b.force_open()
    assert client.pttl(store.key("svc")) == -1


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum of Redis Cluster's key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[Any]:
    """A cluster-enabled server (no slots assigned: enough for CLUSTER KEYSLOT)."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    nodes = f"nodes-{os.getpid()}.conf"
    server = RedisServer("--cluster-enabled", "yes", "--cluster-config-file", nodes)
    while server.port > 55_000:  # the cluster bus listens on port + 10000
        server.port = free_port()
    server.start()
    try:
        yield server.client()
    finally:
        server.kill()
        path = ROOT / "tests" / nodes  # where redis-server runs (tests/redis_server.py)
        path.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "name", ["svc", "ai-generate", "a:b", "with}brace", "ünï", "}svc", "{", "}", "{}", "%7D"]
)
def test_the_keys_of_one_breaker_share_a_slot(
    make: Callable[..., Any], cluster_node: Any, name: str
) -> None:
    """Every key of a breaker hashes to one Cluster slot (checked by a cluster-enabled
    server's CLUSTER KEYSLOT and by CRC16 computed here)."""
    keys = make().keys(name)
    assert len(keys) >= 2
    assert len({key_slot(k) for k in keys}) == 1
    slots = {cluster_node.execute_command("CLUSTER KEYSLOT", k) for k in keys}
    assert slots == {key_slot(keys[0])}


def test_the_redis_clock_is_moved_into_this_process(make: Callable[..., Any]) -> None:
    """With the server's clock, times in the cell are on this process's clock."""
    b = CircuitBreaker("svc", THREE, store=make(clock="redis"))
    fail(b, 3)
    assert b.retry_after == pytest.approx(30.0, abs=0.5)
    assert b.snapshot().open_until == pytest.approx(time.monotonic() + 30.0, abs=0.5)


# --- trip="local" --------------------------------------------------------------------


def test_a_local_trip_opens_only_here_until_a_quorum_agrees(make: Callable[..., Any]) -> None:
    """trip="local": one host's failures open its own breaker; the second host to trip
    opens the shared one, and a third host that saw no failure is open too."""
    a, b = make(trip="local", trip_quorum=2), make(trip="local", trip_quorum=2)
    here, there = CircuitBreaker("svc", THREE, store=a), CircuitBreaker("svc", THREE, store=b)
    fail(here, 3)
    assert here.opened
    assert not there.opened
    there.call(lambda: None)  # its calls still go through
    fail(there, 3)
    assert there.opened
    third = CircuitBreaker("svc", THREE, store=make(trip="local", trip_quorum=2))
    assert third.opened
    here.reset()
    assert eventually(lambda: not there.opened and not third.opened)


# --- outages -------------------------------------------------------------------------


def test_an_unreachable_redis_never_reaches_callers(
    make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """No server at all: the breaker works on local state, errors are counted, one line."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.INFO, logger="resilient"):
        store = make(url=nowhere, retry_interval=60.0)
        b = CircuitBreaker("svc", THREE, store=store)
        for _ in range(50):
            b.call(lambda: None)
        fail(b, 3)
        assert b.opened
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)
    assert not store.reachable
    assert sink.counter("store_errors_total") == 3  # the failures; successes cost nothing
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "resilient: circuit breaker 'svc' opened" in warned[-1]  # the trip, logged apart
    lines = [text for text in warned if not text.startswith("resilient: circuit breaker")]
    assert len(lines) == 1
    assert "store unreachable" in lines[0]


def test_a_hung_redis_costs_at_most_the_timeout(
    own_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that stops answering costs one call the timeout; the next calls nothing;
    when it answers again, the script it was sent runs too late to count and the local
    trip stands (Redis holds no newer state)."""
    store = RedisStore(own_redis_server.url, timeout=0.05, retry_interval=0.05)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        assert store.listening.wait(WAIT)
        assert own_redis_server.pid is not None
        os.kill(own_redis_server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            fail(b)
            assert time.monotonic() - started < 0.05 + 0.1
            started = time.monotonic()
            fail(b, 2)
            assert time.monotonic() - started < 0.02  # the outage is known: no waiting
            assert b.opened  # three failures, counted here
            # Frozen well past the deadline of the script the first failure sent.
            time.sleep(max(0.0, started + 0.05 - time.monotonic()))
        finally:
            os.kill(own_redis_server.pid, signal.SIGCONT)
        assert eventually(lambda: store.reachable)  # read, probed, read again
        # The failure sent before the freeze ran after its deadline: nothing was written,
        # so no shared state is newer than the local trip.
        client: Any = own_redis_server.client()
        assert client.exists(store.key("svc")) == 0
        assert b.opened
    finally:
        store.close()
    outage = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and not r.getMessage().startswith("resilient: circuit breaker")
    ]
    assert len(outage) == 1


async def test_the_async_store_never_blocks_the_loop(
    own_redis_server: RedisServer,
) -> None:
    """With a hung server, an async failure waits at most the timeout while other tasks
    keep running, and the next one does not wait at all."""
    store = AsyncRedisStore(own_redis_server.url, timeout=0.05, retry_interval=60.0)
    try:
        b = CircuitBreaker("svc", THREE, store=store)

        async def aboom() -> None:
            raise BoomError

        with pytest.raises(BoomError):
            await b.acall(aboom)  # opens the loop's connection
        assert own_redis_server.pid is not None
        os.kill(own_redis_server.pid, signal.SIGSTOP)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        try:
            started = time.monotonic()
            with pytest.raises(BoomError):
                await b.acall(aboom)
            assert time.monotonic() - started < 0.05 + 0.1
            assert ticks >= 3  # the loop ran other tasks meanwhile
            started = time.monotonic()
            with pytest.raises(BoomError):
                await b.acall(aboom)
            assert time.monotonic() - started < 0.02
            assert b.opened
        finally:
            task.cancel()
            os.kill(own_redis_server.pid, signal.SIGCONT)
    finally:
        await store.aclose()


def test_allow_lets_every_call_through_during_an_outage(make: Callable[..., Any]) -> None:
    """on_store_error="allow": nothing is counted and nothing rejected without Redis."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    b = CircuitBreaker(
        "svc", THREE, store=make(url=nowhere, on_store_error="allow", retry_interval=60.0)
    )
    fail(b, 10)
    assert not b.opened


# --- the generated blocking twin -------------------------------------------------------


def _unasync() -> Any:
    """The module .ci/unasync.py (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("unasync", ROOT / ".ci" / "unasync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_blocking_script_calls_are_generated_from_the_async_ones() -> None:
    """Every committed sync twin is exactly what .ci/unasync.py makes of its async source."""
    unasync = _unasync()
    for source, target in unasync.FILES.items():
        assert (ROOT / target).read_text() == unasync.generate(source), target


def test_unasync_check_fails_on_a_stale_twin(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--check exits 1 and writes nothing while a twin is stale; a plain run rewrites it."""
    unasync = _unasync()
    target = tmp_path / "_calls_sync.py"
    target.write_text("stale\n")
    monkeypatch.setattr(unasync, "FILES", {"resilient/stores/redis/_calls_async.py": str(target)})
    assert unasync.main(["--check"]) == 1
    assert target.read_text() == "stale\n"
    assert unasync.main([]) == 0
    assert unasync.main(["--check"]) == 0
    assert "def apply(" in target.read_text()
    assert "await " not in target.read_text()

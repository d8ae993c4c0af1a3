"""Bounded memory: idle breakers are evicted from the process, and what one costs."""

from __future__ import annotations

import math
import tracemalloc
import weakref
from typing import Any

import pytest
from garbage import collect

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, ConfigError, breaker, get_breaker
from resilient._breaker.core import default_store
from resilient._breaker.registry import DEFAULT_IDLE_TIMEOUT, SWEEP_BATCH
from resilient.compat import CircuitBreakerRegistry
from resilient.metrics import MemorySink
from resilient.stores import MemoryStore
from resilient.telemetry import generate_report, window
from resilient.testing import FakeClock

IDLE = DEFAULT_IDLE_TIMEOUT
registry = CircuitBreakerRegistry.instance


def _gauge_names() -> set[str]:
    return {dict(tags).get("breaker", "") for (_, tags) in window.gauges}


def _store() -> MemoryStore:
    store = default_store()
    assert isinstance(store, MemoryStore)
    return store


def test_idle_breakers_are_evicted_after_the_idle_timeout(fake_clock: FakeClock) -> None:
    """Unused, closed, failure-free breakers leave the registry, the store and the gauges."""
    made = [registry.get_or_create(f"host-{i}") for i in range(50)]
    refs = [weakref.ref(b) for b in made]
    del made
    assert len(registry) == 50
    assert "host-7" in _gauge_names()
    fake_clock.advance(IDLE - 1)
    assert len(generate_report()["services"]) == 50  # not idle long enough yet
    fake_clock.advance(1)
    report = generate_report()  # reading the report sweeps when a sweep is due
    assert report["services"] == {}
    assert len(registry) == 0
    assert not any(name.startswith("host-") for name in _store().names())
    assert not any(name.startswith("host-") for name in _gauge_names())
    collect()
    assert [r() for r in refs] == [None] * 50  # nothing else held them: freed


def test_breakers_with_something_to_remember_are_kept(fake_clock: FakeClock) -> None:
    """Open, forced-open, disabled, failing and windowed-failing breakers are never evicted."""
    failing = registry.get_or_create("failing", BreakerConfig(failure_threshold=5))
    opened = registry.get_or_create("opened", BreakerConfig(failure_threshold=1))
    forced = registry.get_or_create("forced")
    disabled = registry.get_or_create("disabled")
    rate = BreakerConfig(failure_rate=0.5, window_size=10, minimum_calls=10)
    windowed = registry.get_or_create("windowed", rate)
    timed = registry.get_or_create(
        "timed", BreakerConfig(failure_rate=0.5, window_duration=2 * IDLE, minimum_calls=10)
    )
    fresh = registry.get_or_create("fresh")
    for b in (failing, opened, windowed, timed):
        with pytest.raises(ConnectionError):
            b.call(_refuse)
    forced.force_open()
    disabled.disable()
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    assert registry.names() == ["disabled", "failing", "forced", "opened", "timed", "windowed"]
    assert "fresh" not in registry.names()
    assert get_breaker("fresh") is fresh  # still held here, so still found


def test_a_lookup_counts_as_use(fake_clock: FakeClock) -> None:
    """get_or_create() resets a breaker's idle time; evict_idle(idle_for=) overrides it."""
    registry.get_or_create("used")
    fake_clock.advance(IDLE - 10)
    registry.get_or_create("used")
    fake_clock.advance(20)
    assert registry.evict_idle() == 0
    assert registry.evict_idle(idle_for=15) == 1


def test_an_evicted_breaker_that_is_still_held_keeps_one_state(fake_clock: FakeClock) -> None:
    """A decorated function keeps its breaker; the name still finds the same state."""

    @breaker("held", BreakerConfig(failure_threshold=2))
    def call(fail: bool) -> int:
        if fail:
            raise ConnectionError
        return 1

    b = get_breaker("held")
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    assert "held" not in registry  # not listed...
    assert get_breaker("held") is b  # ...but found while something holds it
    assert registry.get_or_create("held") is b  # found again, listed again
    assert registry.names() == ["held"]
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    twin = CircuitBreaker("held", BreakerConfig(failure_threshold=2))
    assert call(False) == 1
    for _ in range(2):
        with pytest.raises(ConnectionError):
            call(True)
    assert twin.mode is BreakerMode.OPEN  # one cell: the twin sees the trip
    assert registry.names() == ["held"]  # its state changed: listed again
    report = generate_report()
    assert report["open_circuits"] == ["held"]
    assert report["summary"]["health_status"] == "critical"


async def test_an_evicted_async_breaker_is_listed_again_when_it_trips(
    fake_clock: FakeClock,
) -> None:
    """The async path relists an evicted breaker as soon as it records a failure."""

    @breaker("aheld", BreakerConfig(failure_threshold=1))
    async def call() -> None:
        raise ConnectionError

    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    with pytest.raises(ConnectionError):
        await call()
    assert registry.open_names() == ["aheld"]


class AsyncOnlyStore:
    """An AsyncStateStore over a MemoryStore: the breaker awaits every transition."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def cell(self, name: str) -> Any:
        return self.inner.cell(name)

    async def aapply(self, *args: Any) -> Any:
        return self.inner.apply(*args)


async def test_a_breaker_on_an_async_store_evicted_mid_call_is_listed_again_when_it_trips(
    fake_clock: FakeClock,
) -> None:
    """A breaker on an AsyncStateStore, evicted while a call runs, is listed again when that
    call's failure trips it; the caller gets its own error."""

    @breaker("astore-held", BreakerConfig(failure_threshold=1), store=AsyncOnlyStore())
    async def call() -> None:
        assert registry.evict_idle() == 0  # in use: unused from now on
        fake_clock.advance(IDLE)
        assert registry.evict_idle() == 1
        raise ConnectionError

    with pytest.raises(ConnectionError):
        await call()
    assert registry.open_names() == ["astore-held"]


def test_idle_timeout_is_configurable_and_validated(fake_clock: FakeClock) -> None:
    """idle_timeout=None keeps every breaker; bad values are ConfigErrors naming it."""
    registry.idle_timeout = None
    registry.get_or_create("kept")
    fake_clock.advance(100 * IDLE)
    assert registry.evict_idle() == 0
    assert generate_report()["services"] == {"kept": "closed"}
    registry.idle_timeout = 30
    fake_clock.advance(30)
    assert registry.evict_idle() == 1
    for bad in (0, -1, math.nan, "10"):
        with pytest.raises(ConfigError) as caught:
            registry.idle_timeout = bad  # type: ignore[assignment]
        assert caught.value.parameter == "idle_timeout"
    with pytest.raises(ConfigError):
        CircuitBreakerRegistry(idle_timeout=math.inf)
    with pytest.raises(ConfigError) as caught:
        registry.evict_idle(idle_for=-1)
    assert caught.value.parameter == "idle_for"


def test_a_sink_installed_after_eviction_is_not_sent_evicted_gauges(fake_clock: FakeClock) -> None:
    """Evicted breakers' gauges are gone: a later metrics= decoration replays none of them."""
    for i in range(20):
        registry.get_or_create(f"gone-{i}")
    fake_clock.advance(IDLE)
    registry.evict_idle()
    sink = MemorySink()
    resilient.retry(attempts=2, metrics=sink)
    assert sink.gauge_value("open_circuits") is None


def test_memory_store_releases_only_idle_cells_and_finds_held_ones_again() -> None:
    """release() frees idle cells; a cell still held comes back by name, state intact."""
    store = MemoryStore()
    config = BreakerConfig(failure_threshold=3)
    holder = CircuitBreaker("a", config, store=store)
    CircuitBreaker("b", config, store=store)
    with pytest.raises(ConnectionError):
        holder.call(_refuse)
    assert store.release(["a", "b", "unknown"]) == 1  # "a" has a failure counted
    assert store.names() == ["a"]
    assert store.release(["a"]) == 0
    holder.reset()
    assert store.release(["a"]) == 1
    twin = CircuitBreaker("a", config, store=store)
    with pytest.raises(ConnectionError):
        twin.call(_refuse)
    assert holder.failures == 1  # the same cell
    assert store.names() == ["a"]


def test_an_idle_breaker_costs_at_most_2_kb_and_eviction_gives_it_back(
    fake_clock: FakeClock,
) -> None:
    """5,000 idle breakers take <= 2 KB each in the process, and ~nothing once evicted."""
    registry.get_or_create("warm-up")
    generate_report()
    count = 5_000
    collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            registry.get_or_create(f"idle-{i:05d}")
        collect()
        per_breaker = (tracemalloc.get_traced_memory()[0] - base) / count
        fake_clock.advance(IDLE)
        while generate_report()["services"]:  # each report's sweep evicts one batch
            pass
        collect()
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert 200 < per_breaker <= 2048
    assert left < 64 * 1024, f"{left} bytes left after eviction"


def test_an_automatic_sweep_evicts_one_batch_and_the_next_goes_on(fake_clock: FakeClock) -> None:
    """A report's sweep evicts at most SWEEP_BATCH breakers, the longest-listed first."""
    count = SWEEP_BATCH + 10
    for i in range(count):
        registry.get_or_create(f"batch-{i:05d}")
    fake_clock.advance(IDLE)
    generate_report()
    assert len(registry) == 10
    assert registry.names()[0] == f"batch-{SWEEP_BATCH:05d}"
    generate_report()  # due again at once: the last sweep stopped early
    assert len(registry) == 0
    with pytest.raises(ConfigError) as caught:
        registry.evict_idle(at_most=0)
    assert caught.value.parameter == "at_most"


def _refuse() -> None:
    raise ConnectionError


def test_sweeping_while_threads_use_a_name_never_splits_its_state(fake_clock: FakeClock) -> None:
    """Evictions racing lookups and failures: every breaker of a name shares one cell."""
    import threading

    config = BreakerConfig(failure_threshold=1_000_000)
    seen: list[CircuitBreaker] = []
    stop = threading.Event()

    def worker(index: int) -> None:
        calls = 0
        while not stop.is_set():
            calls += 1
            b = registry.get_or_create("raced", config)
            seen.append(b)
            if index == 0 and calls % 8 == 0:
                with pytest.raises(ConnectionError):
                    b.call(_refuse)
            else:
                b.call(lambda: None)  # a success: ends the run of failures

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    evicted = sweeps = 0
    try:
        while sweeps < 300 or (evicted < 20 and sweeps < 100_000):
            evicted += registry.evict_idle(idle_for=0)
            sweeps += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert evicted > 0
    cells = {id(b._cell) for b in seen}
    assert len(cells) == 1
    assert _store().cell("raced") is seen[0]._cell

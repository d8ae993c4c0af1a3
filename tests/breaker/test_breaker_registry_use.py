"""The registry evicts only breakers that are unused, and looks names up cheaply."""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Iterator

import pytest

import resilient
from resilient import BreakerConfig, CircuitBreaker, CircuitOpenError, breaker
from resilient._breaker.registry import DEFAULT_IDLE_TIMEOUT
from resilient.compat import CircuitBreakerRegistry
from resilient.telemetry import generate_report, window
from resilient.testing import FakeClock

IDLE = DEFAULT_IDLE_TIMEOUT
registry = CircuitBreakerRegistry.instance


def _gauge(name: str) -> float | None:
    return window.gauges.get(("open_circuits", (("breaker", name),)))


def _ok() -> int:
    return 1


async def _aok() -> int:
    return 1


def _sync_decorated(name: str) -> Callable[[], object]:
    return breaker(name)(_ok)


def _windowed_decorated(name: str) -> Callable[[], object]:
    config = BreakerConfig(failure_rate=0.5, window_size=10, minimum_calls=10)
    return breaker(name, config)(_ok)


def _run(coroutine: Coroutine[object, object, object]) -> object:
    """Run a coroutine that never suspends (a closed breaker's call of ``_aok``)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the call suspended")


def _async_decorated(name: str) -> Callable[[], object]:
    guarded = breaker(name)(_aok)
    return lambda: _run(guarded())


def _call_method(name: str) -> Callable[[], object]:
    held = registry.get_or_create(name)  # kept, as the HTTP client keeps its hosts' breakers
    return lambda: held.call(_ok)


def _context_manager(name: str) -> Callable[[], object]:
    held = registry.get_or_create(name)

    def use() -> None:
        with held:
            pass

    return use


USES = {
    "decorated": _sync_decorated,
    "windowed": _windowed_decorated,
    "async": _async_decorated,
    "call": _call_method,
    "with": _context_manager,
}


@pytest.mark.parametrize("make", USES.values(), ids=USES.keys())
def test_a_breaker_in_use_is_never_evicted(
    fake_clock: FakeClock, make: Callable[[str], Callable[[], object]]
) -> None:
    """Called 100 times a minute for 12 minutes, a breaker stays listed with its gauge; an
    unused one goes."""
    use = make("payments")
    registry.get_or_create("other")
    for _minute in range(12):
        for _ in range(100):
            use()
            fake_clock.advance(0.6)
        generate_report()  # sweeps when due
        assert "payments" in registry
        assert _gauge("payments") == 0
    assert registry.evict_idle() == 0  # "other" went already; "payments" is in use
    assert registry.names() == ["payments"]
    assert generate_report()["services"] == {"payments": "closed"}


def test_an_idle_breaker_is_evicted_after_its_last_use(fake_clock: FakeClock) -> None:
    """A breaker that stops being called is evicted once unused for the idle timeout, not
    before, and at most a sweep interval (a quarter of the timeout) after."""
    use = _sync_decorated("stops")
    step = IDLE / 8  # a report every step: a sweep every quarter of the idle timeout
    for _ in range(10):
        use()
        fake_clock.advance(step)
        generate_report()
    unused = step
    while unused < IDLE:
        assert "stops" in registry
        fake_clock.advance(step)
        unused += step
        generate_report()
    while unused < IDLE + IDLE / 4:
        fake_clock.advance(step)
        unused += step
        generate_report()
    assert "stops" not in registry
    assert _gauge("stops") is None


def test_an_evicted_breaker_used_again_is_listed_with_its_gauge(fake_clock: FakeClock) -> None:
    """The first call through an evicted breaker lists it again and brings its gauge back."""
    use = _sync_decorated("back")
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    assert "back" not in registry
    assert _gauge("back") is None
    assert use() == 1
    assert registry.names() == ["back"]
    assert _gauge("back") == 0
    assert generate_report()["services"] == {"back": "closed"}
    for _ in range(3):  # used at every sweep: kept
        fake_clock.advance(IDLE / 2)
        assert registry.evict_idle() == 0
        assert use() == 1
    registry.evict_idle()  # the sweep after the last call marks it...
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1  # ...and it goes once unused for the idle timeout


async def test_an_evicted_async_breaker_used_again_is_listed(fake_clock: FakeClock) -> None:
    """The async fast path lists an evicted breaker again on its next successful call."""
    guarded = breaker("aback")(_aok)
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    assert await guarded() == 1
    assert registry.names() == ["aback"]
    assert _gauge("aback") == 0


def test_an_evicted_breaker_tripped_elsewhere_is_listed_open_on_its_next_call(
    fake_clock: FakeClock,
) -> None:
    """A call meeting the shared state opened by another breaker of the name (another
    process, with a shared store) lists the evicted breaker again, open."""
    use = _sync_decorated("tripped-elsewhere")
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1
    elsewhere = CircuitBreaker("tripped-elsewhere")  # same store, same state
    elsewhere.force_open()
    with pytest.raises(CircuitOpenError):
        use()
    assert registry.open_names() == ["tripped-elsewhere"]
    assert _gauge("tripped-elsewhere") == 1
    assert generate_report()["summary"]["health_status"] == "critical"


def test_calls_stay_quiet_once_their_use_is_noted(fake_clock: FakeClock) -> None:
    """Only the first call after a sweep takes the full path; the rest skip the registry."""
    b = registry.get_or_create("quiet")
    assert b._loud  # watched from creation: the next call is noted
    b.call(_ok)
    assert not b._loud
    fake_clock.advance(IDLE / 4)
    registry.evict_idle()
    assert b._loud
    b.call(_ok)
    assert not b._loud


def test_clearing_the_registry_leaves_its_breakers_quiet(fake_clock: FakeClock) -> None:
    """A breaker the registry watched no longer reports to it once the registry forgot it."""
    b = registry.get_or_create("cleared")
    registry.clear()
    assert not b._loud
    assert b.call(_ok) == 1
    assert registry.names() == []


class _CountingClock(FakeClock):
    reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        return super().monotonic()


@pytest.fixture
def counting_clock() -> Iterator[_CountingClock]:
    clock = _CountingClock()
    with resilient.testing.use_clock(clock):
        yield clock


def test_a_lookup_neither_checks_the_name_nor_reads_the_clock(
    counting_clock: _CountingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_or_create() of a listed breaker in use skips the name check and the clock."""
    import resilient._breaker.registry as module

    checked: list[object] = []
    real = module.check_name

    def check(name: object, parameter: str = "name") -> str:
        checked.append(name)
        return real(name, parameter)

    monkeypatch.setattr(module, "check_name", check)
    made = registry.get_or_create("looked-up")
    assert checked == ["looked-up"]  # checked once, when made
    made.call(_ok)  # used: no longer watched
    reads = counting_clock.reads
    for _ in range(5):
        assert registry.get_or_create("looked-up") is made
        assert registry.get_or_create("looked-up", BreakerConfig.standard) is made
    assert checked == ["looked-up"]
    assert counting_clock.reads == reads
    with pytest.raises(resilient.ConfigError) as caught:
        registry.get_or_create("x" * 201)
    assert caught.value.parameter == "name"


def test_sweeps_racing_calls_never_evict_a_breaker_in_use(fake_clock: FakeClock) -> None:
    """Threads calling a breaker between sweeps keep it listed through 200 sweeps."""
    use = _sync_decorated("raced-use")
    b = registry.get_or_create("raced-use")
    calls = [0, 0, 0]
    changed = threading.Condition()
    stop = threading.Event()

    def worker(index: int) -> None:
        while not stop.is_set():
            use()
            with changed:
                calls[index] += 1
                changed.notify_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(200):
            registry.evict_idle()
            assert "raced-use" in registry
            with changed:  # a call that began after the sweep marked the breaker
                start = list(calls)

                def two_more(start: list[int] = start) -> bool:
                    return any(c >= s + 2 for c, s in zip(calls, start, strict=True))

                assert changed.wait_for(two_more, 10)
            fake_clock.advance(IDLE / 2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert registry.get("raced-use") is b
    registry.evict_idle()
    fake_clock.advance(IDLE)
    assert registry.evict_idle() == 1  # once the calls stop, it goes

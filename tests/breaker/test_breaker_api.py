"""@breaker and CircuitBreaker through their public API, sync and async side by side."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
from typing import Any

import pytest
from strategies import BoomError, IgnoredError

import resilient
from resilient import (
    BreakerClosed,
    BreakerConfig,
    BreakerDisabled,
    BreakerEvent,
    BreakerForcedOpen,
    BreakerHalfOpened,
    BreakerMode,
    BreakerOpened,
    CallRecorded,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    breaker,
    get_breaker,
)
from resilient.compat import CircuitBreakerRegistry
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

THREE = BreakerConfig(failure_threshold=3, reset_timeout=60)


def fail() -> None:
    raise BoomError


async def afail() -> None:
    raise BoomError


def trip(b: CircuitBreaker) -> None:
    while b.mode is BreakerMode.CLOSED:
        with pytest.raises(BoomError):
            b.call(fail)


# --- the life cycle -----------------------------------------------------------------------


def test_opens_after_threshold_then_probes_then_closes(fake_clock: FakeClock) -> None:
    """Closed -> open after 3 failures -> half-open after 60 s -> closed on a probe success."""
    calls = []

    @breaker("svc", THREE)
    def svc(ok: bool) -> str:
        calls.append(ok)
        if not ok:
            raise BoomError
        return "fine"

    for _ in range(3):
        with pytest.raises(BoomError):
            svc(False)
    b = get_breaker("svc")
    assert b.mode is BreakerMode.OPEN
    assert b.opened
    with pytest.raises(CircuitOpenError) as caught:
        svc(True)
    assert (caught.value.name, caught.value.retry_after) == ("svc", 60.0)
    assert len(calls) == 3
    fake_clock.advance(59.5)
    with pytest.raises(CircuitOpenError) as caught:
        svc(True)
    assert caught.value.retry_after == pytest.approx(0.5)
    fake_clock.advance(0.5)
    assert b.mode is BreakerMode.HALF_OPEN
    assert not b.opened
    assert svc(True) == "fine"
    assert b.mode is BreakerMode.CLOSED
    assert len(calls) == 4


async def test_async_life_cycle(fake_clock: FakeClock) -> None:
    """The async twin: same rules, same errors, awaited."""

    @breaker("asvc", THREE)
    async def asvc(ok: bool) -> str:
        if not ok:
            raise BoomError
        return "fine"

    assert inspect.iscoroutinefunction(asvc)
    for _ in range(3):
        with pytest.raises(BoomError):
            await asvc(False)
    with pytest.raises(CircuitOpenError):
        await asvc(True)
    fake_clock.advance(60)
    with pytest.raises(BoomError):
        await asvc(False)  # the probe fails: open again
    assert get_breaker("asvc").mode is BreakerMode.OPEN
    fake_clock.advance(60)
    assert await asvc(True) == "fine"
    assert get_breaker("asvc").mode is BreakerMode.CLOSED


async def test_one_breaker_guards_sync_and_async_functions(fake_clock: FakeClock) -> None:
    """Failures of a sync function open the breaker for an async one of the same name."""

    @breaker("shared", THREE)
    def sync_side() -> None:
        raise BoomError

    @breaker("shared", THREE)
    async def async_side() -> str:
        return "ok"

    for _ in range(3):
        with pytest.raises(BoomError):
            sync_side()
    with pytest.raises(CircuitOpenError):
        await async_side()
    fake_clock.advance(60)
    assert await async_side() == "ok"
    assert get_breaker("shared").mode is BreakerMode.CLOSED


def test_a_success_resets_the_consecutive_count(fake_clock: FakeClock) -> None:
    """Two failures, a success, two failures: never three in a row, so it stays closed."""
    outcomes = iter([False, False, True, False, False])

    @breaker("flaky", THREE)
    def flaky() -> None:
        if not next(outcomes):
            raise BoomError

    for _ in range(5):
        try:
            flaky()
        except BoomError:
            pass
    assert get_breaker("flaky").mode is BreakerMode.CLOSED
    assert get_breaker("flaky").failures == 2


async def test_async_success_resets_the_consecutive_count(fake_clock: FakeClock) -> None:
    """The async hot path also ends a run of failures on success."""
    outcomes = iter([False, False, True, False, False])

    @breaker("aflaky", THREE)
    async def aflaky() -> None:
        if not next(outcomes):
            raise BoomError

    for _ in range(5):
        try:
            await aflaky()
        except BoomError:
            pass
    assert get_breaker("aflaky").failures == 2


# --- what counts -----------------------------------------------------------------------


def test_ignored_errors_neither_add_nor_reset(fake_clock: FakeClock) -> None:
    """An ignored error between failures leaves the consecutive count where it was."""
    b = CircuitBreaker("ign", THREE.replace(ignore=IgnoredError))
    errors = [BoomError, IgnoredError, BoomError, IgnoredError, BoomError]
    for error in errors:

        def raise_it(error: type[Exception] = error) -> None:
            raise error

        with pytest.raises(error):
            b.call(raise_it)
    assert b.mode is BreakerMode.OPEN


def test_errors_not_recorded_count_as_successes(fake_clock: FakeClock) -> None:
    """With record=BoomError, a KeyError is a success: it ends the run of failures."""
    b = CircuitBreaker("rec", THREE.replace(record=BoomError))
    for error in [BoomError, BoomError, KeyError, BoomError, BoomError]:

        def raise_it(error: type[Exception] = error) -> None:
            raise error

        with pytest.raises(error):
            b.call(raise_it)
    assert (b.mode, b.failures) == (BreakerMode.CLOSED, 2)


def test_listeners_hear_errors_not_recorded_as_successes(fake_clock: FakeClock) -> None:
    """An error record= does not name is announced with outcome "success"."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("rec-heard", THREE.replace(record=BoomError))
    b.add_listener(seen.append)

    def raise_key_error() -> None:
        raise KeyError

    with pytest.raises(KeyError):
        b.call(raise_key_error)
    assert seen == [CallRecorded("rec-heard", "success", 0.0, False)]


def test_failure_result_counts_returned_values(fake_clock: FakeClock) -> None:
    """failure_result turns a returned value into a failure (the value is still returned)."""

    @breaker("status", THREE.replace(failure_result=lambda status: status >= 500))
    def status() -> int:
        return 503

    assert [status() for _ in range(3)] == [503, 503, 503]
    with pytest.raises(CircuitOpenError):
        status()


@pytest.mark.parametrize("exit_error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_exits_never_count_and_free_the_probe(
    fake_clock: FakeClock, exit_error: type[BaseException]
) -> None:
    """An exit passing through a probe is not a failure, and frees the probe's permit."""
    b = CircuitBreaker("exit", THREE)
    trip(b)
    fake_clock.advance(60)

    def leave() -> None:
        raise exit_error

    with pytest.raises(exit_error):
        b.call(leave)
    assert b.mode is BreakerMode.HALF_OPEN
    assert b.snapshot().probes == ()
    assert b.call(lambda: "probe") == "probe"
    assert b.mode is BreakerMode.CLOSED


async def test_cancellation_never_counts_and_frees_the_probe(fake_clock: FakeClock) -> None:
    """A cancelled probe frees its permit; a cancelled closed call is not a failure."""
    gate = asyncio.Event()

    @breaker("cancel", BreakerConfig(failure_threshold=1, reset_timeout=1))
    async def wait() -> None:
        await gate.wait()

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    b = get_breaker("cancel")
    assert (b.mode, b.failures) == (BreakerMode.CLOSED, 0)
    b.force_open()
    b.reset()
    with pytest.raises(BoomError):
        await b.acall(afail)
    fake_clock.advance(1)
    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    assert len(b.snapshot().probes) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (b.mode, b.snapshot().probes) == (BreakerMode.HALF_OPEN, ())


# --- the ways in -----------------------------------------------------------------------


def test_call_and_context_manager(fake_clock: FakeClock) -> None:
    """b.call(fn, *args) and `with b:` go through the same rules as the decorator."""
    b = CircuitBreaker("ways", THREE)
    assert b.call(lambda x, y=0: x + y, 1, y=2) == 3
    for _ in range(3):
        with pytest.raises(BoomError), b:
            raise BoomError
    with pytest.raises(CircuitOpenError), b:
        pytest.fail("the body must not run")


async def test_acall_and_async_context_manager(fake_clock: FakeClock) -> None:
    """await b.acall(fn) and `async with b:` mirror the sync forms."""
    b = CircuitBreaker("aways", THREE)

    async def add(x: int, y: int = 0) -> int:
        return x + y

    assert await b.acall(add, 1, y=2) == 3
    for _ in range(3):
        with pytest.raises(BoomError):
            async with b:
                raise BoomError
    with pytest.raises(CircuitOpenError):
        async with b:
            pytest.fail("the body must not run")


def test_breaker_object_as_decorator_keeps_signature(fake_clock: FakeClock) -> None:
    """A CircuitBreaker decorates functions and methods, keeping their signatures."""
    b = CircuitBreaker("deco", THREE)

    class Service:
        @b
        def fetch(self, key: str, *, fresh: bool = False) -> str:
            return f"{key}:{fresh}"

        @breaker("deco-cls", THREE)
        @classmethod
        def build(cls) -> str:
            return cls.__name__

    assert Service().fetch("a", fresh=True) == "a:True"
    assert Service.build() == "Service"
    signature = "(self, key: 'str', *, fresh: 'bool' = False) -> 'str'"
    assert str(inspect.signature(Service.fetch)) == signature


# --- manual operations, state and repr ---------------------------------------------------


def test_force_open_disable_reset(fake_clock: FakeClock) -> None:
    """force_open rejects until reset; disable lets everything through uncounted."""
    b = CircuitBreaker("manual", BreakerConfig(failure_threshold=1))
    b.force_open()
    with pytest.raises(CircuitOpenError) as caught:
        b.call(lambda: None)
    assert caught.value.retry_after is None
    assert b.retry_after is None
    fake_clock.advance(1e6)
    assert b.mode is BreakerMode.FORCED_OPEN
    b.disable()
    for _ in range(5):
        with pytest.raises(BoomError):
            b.call(fail)
    assert b.mode is BreakerMode.DISABLED
    b.reset()
    assert (b.mode, b.failures, b.retry_after) == (BreakerMode.CLOSED, 0, 0.0)


def test_repr_shows_name_state_and_time_to_next_probe(fake_clock: FakeClock) -> None:
    """repr says what the breaker is doing, as in the style guide."""
    b = CircuitBreaker("ai-generate", THREE)
    assert repr(b) == "<CircuitBreaker 'ai-generate' CLOSED failures=0/3>"
    trip(b)
    fake_clock.advance(18.8)
    assert repr(b) == "<CircuitBreaker 'ai-generate' OPEN failures=3 reopens_in=41.2s>"
    fake_clock.advance(41.2)
    b.call(lambda: None)
    b.force_open()
    assert repr(b) == "<CircuitBreaker 'ai-generate' FORCED_OPEN until reset>"
    rate = CircuitBreaker("rate", BreakerConfig(failure_rate=0.5))
    assert repr(rate) == "<CircuitBreaker 'rate' CLOSED calls=0 failed=0 slow=0>"


def test_window_reports_rate_counts(fake_clock: FakeClock) -> None:
    """window() gives (calls, failures, slow calls) for rate-mode breakers."""
    b = CircuitBreaker("win", BreakerConfig(failure_rate=0.9, slow_call_duration=1))
    b.call(lambda: None)
    b.call(lambda: fake_clock.advance(2))
    with pytest.raises(BoomError):
        b.call(fail)
    assert b.window() == (3, 1, 1)


# --- names, registry, stores ---------------------------------------------------------------


def test_default_name_is_module_and_qualname(fake_clock: FakeClock) -> None:
    """Without a name each function gets its own breaker, called module.qualname."""
    guard = breaker()

    @guard
    def one() -> None: ...

    @guard
    def two() -> None: ...

    prefix = f"{__name__}.test_default_name_is_module_and_qualname.<locals>"
    assert f"{prefix}.one" in CircuitBreakerRegistry.instance
    assert get_breaker(f"{prefix}.two") is not get_breaker(f"{prefix}.one")


def test_one_name_is_one_breaker() -> None:
    """Decorators naming the same breaker share one object, the one get_breaker returns."""
    first = breaker("same", THREE)
    second = breaker("same", BreakerConfig(failure_threshold=3, reset_timeout=60.0))
    assert first.layer.breaker is second.layer.breaker  # type: ignore[attr-defined]
    assert get_breaker("same") is CircuitBreakerRegistry.instance.get("same")
    assert get_breaker("same") is first.layer.breaker  # type: ignore[attr-defined]


def test_a_name_claimed_with_another_config_or_store_is_an_error() -> None:
    """Two sets of rules on one state would contradict each other: ConfigError."""
    breaker("claimed", THREE)
    with pytest.raises(ConfigError) as caught:
        breaker("claimed", BreakerConfig.critical)
    assert caught.value.parameter == "config"
    assert "claimed" in caught.value.allowed
    with pytest.raises(ConfigError) as caught:
        breaker("claimed", THREE, store=MemoryStore())
    assert caught.value.parameter == "store"


def test_registry_register_refuses_a_second_breaker_for_a_name() -> None:
    """register() adds a hand-built breaker once; another object with its name is refused."""
    registry = CircuitBreakerRegistry()
    b = registry.register(CircuitBreaker("mine"))
    assert registry.register(b) is b
    with pytest.raises(ConfigError):
        registry.register(CircuitBreaker("mine"))


def test_reset_forgets_names_and_states(fake_clock: FakeClock) -> None:
    """testing.reset() frees every name and closes breakers made before it."""

    @breaker("before-reset", BreakerConfig(failure_threshold=1))
    def f() -> None:
        raise BoomError

    with pytest.raises(BoomError):
        f()
    assert get_breaker("before-reset").opened
    resilient.testing.reset()
    resilient.configure(clock=fake_clock)
    assert "before-reset" not in CircuitBreakerRegistry.instance
    with pytest.raises(BoomError):
        f()  # the breaker is closed again: the call went through
    breaker("before-reset", THREE)  # and the name is free for another config


def test_breakers_sharing_a_store_share_state(
    make_store: Any,
    fake_clock: FakeClock,
) -> None:
    """State lives in the store under the name: two breaker objects, one state."""
    store = make_store()
    a = CircuitBreaker("svc", THREE, store=store)
    b = CircuitBreaker("svc", THREE, store=store)
    trip(a)
    assert b.opened
    elsewhere = CircuitBreaker("svc", THREE, store=make_store())
    assert not elsewhere.opened


def test_configured_store_is_read_at_call_time(fake_clock: FakeClock) -> None:
    """configure(store=...) moves breakers without their own store to the new store."""
    b = CircuitBreaker("moving", BreakerConfig(failure_threshold=1))

    @b
    def f() -> None:
        raise BoomError

    with pytest.raises(BoomError):
        f()
    assert b.opened
    store = MemoryStore()
    resilient.configure(store=store)
    assert not b.opened
    with pytest.raises(BoomError):
        f()
    assert store.get("moving").mode is BreakerMode.OPEN


def test_an_async_only_store_is_refused_for_sync_calls(fake_clock: FakeClock) -> None:
    """A store with only aapply cannot serve a sync call, and says so."""

    class AsyncOnly:
        def __init__(self) -> None:
            self.inner = MemoryStore()

        def cell(self, name: str) -> Any:
            return self.inner.cell(name)

        async def aapply(self, *args: Any) -> Any:
            return self.inner.apply(*args)

    store = AsyncOnly()
    b = CircuitBreaker("async-only", BreakerConfig(failure_threshold=1), store=store)
    with pytest.raises(ConfigError, match="async only") as caught:
        b.call(fail)
    assert (caught.value.parameter, caught.value.value) == ("store", store)
    assert caught.value.allowed.startswith("a StateStore for sync calls")
    with pytest.raises(BoomError):
        asyncio.run(b.acall(afail))
    assert b.opened


def test_bad_arguments() -> None:
    """Names, configs and stores are checked when the breaker is made."""
    with pytest.raises(ConfigError):
        CircuitBreaker("")
    with pytest.raises(ConfigError):
        CircuitBreaker("x", config=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CircuitBreaker("x", store=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        breaker("x", config=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        breaker(name=3)  # type: ignore[arg-type]
    assert breaker("by-preset", "critical").layer.breaker.config is BreakerConfig.critical  # type: ignore[attr-defined]


def test_a_bad_config_or_store_error_shows_the_value_and_what_is_allowed() -> None:
    """The ConfigError for config= and store= carries the value given and what is allowed."""
    with pytest.raises(ConfigError) as caught:
        CircuitBreaker("x", config=5)  # type: ignore[arg-type]
    error = caught.value
    assert (error.parameter, error.value, error.allowed) == ("config", 5, "a BreakerConfig")
    bad_store = object()
    with pytest.raises(ConfigError) as caught:
        CircuitBreaker("x", store=bad_store)  # type: ignore[arg-type]
    error = caught.value
    assert (error.parameter, error.value) == ("store", bad_store)
    assert error.allowed == "a StateStore or AsyncStateStore (or None)"


# --- retry and the breaker ----------------------------------------------------------------


def test_retry_outside_the_breaker_stops_when_it_opens(fake_clock: FakeClock) -> None:
    """Every attempt counts; once the breaker opens, retry stops at once."""
    calls = []

    @resilient.retry(attempts=10, initial_delay=0.1, jitter=0)
    @breaker("retried", THREE)
    def svc() -> None:
        calls.append(1)
        raise BoomError

    with pytest.raises(CircuitOpenError):
        svc()
    assert len(calls) == 3


# --- events --------------------------------------------------------------------------------


def test_events_follow_the_life_cycle(fake_clock: FakeClock) -> None:
    """Listeners see each outcome, the trip, rejections, the probe and the close."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("events", BreakerConfig(failure_threshold=2, reset_timeout=10))
    b.add_listener(seen.append)
    with pytest.raises(BoomError):
        b.call(fail)
    fake_clock.advance(1)
    with pytest.raises(BoomError):
        b.call(fail)
    with pytest.raises(CircuitOpenError):
        b.call(fail)
    fake_clock.advance(10)
    b.call(lambda: None)
    b.force_open()
    b.disable()
    assert seen == [
        CallRecorded("events", "failure", 0.0, False),
        CallRecorded("events", "failure", 0.0, False),
        BreakerOpened("events", failures=2, retry_after=10.0, trips=1),
        CallRejected("events", 10.0),
        BreakerHalfOpened("events"),
        CallRecorded("events", "success", 0.0, True),
        BreakerClosed("events"),
        BreakerForcedOpen("events"),
        BreakerDisabled("events"),
    ]


def test_listeners_see_the_probe_admitted_once_and_the_call_beside_it_rejected(
    fake_clock: FakeClock,
) -> None:
    """Admission announces open -> half-open once; a call refused beside the probe, nothing."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("sync-probe", BreakerConfig(failure_threshold=1, reset_timeout=10))
    b.add_listener(seen.append)
    with pytest.raises(BoomError):
        b.call(fail)
    fake_clock.advance(10)

    def probe() -> int:
        with pytest.raises(CircuitOpenError):
            b.call(fail)
        fake_clock.advance(2)
        return 1

    assert b.call(probe) == 1
    assert seen == [
        CallRecorded("sync-probe", "failure", 0.0, False),
        BreakerOpened("sync-probe", failures=1, retry_after=10.0, trips=1),
        BreakerHalfOpened("sync-probe"),
        CallRejected("sync-probe", 60.0),
        CallRecorded("sync-probe", "success", 2.0, True),
        BreakerClosed("sync-probe"),
    ]


async def test_async_listeners_see_the_probe_admitted_once_and_the_call_beside_it_rejected(
    fake_clock: FakeClock,
) -> None:
    """Async admission announces open -> half-open once; a call refused beside it, nothing."""
    seen: list[BreakerEvent] = []
    resilient.add_listener(seen.append)
    b = CircuitBreaker("async-probe", BreakerConfig(failure_threshold=1, reset_timeout=10))
    with pytest.raises(BoomError):
        await b.acall(afail)
    fake_clock.advance(10)

    async def probe() -> int:
        with pytest.raises(CircuitOpenError):
            await b.acall(afail)
        fake_clock.advance(2)
        return 1

    assert await b.acall(probe) == 1
    resilient.remove_listener(seen.append)
    assert seen == [
        CallRecorded("async-probe", "failure", 0.0, False),
        BreakerOpened("async-probe", failures=1, retry_after=10.0, trips=1),
        BreakerHalfOpened("async-probe"),
        CallRejected("async-probe", 60.0),
        CallRecorded("async-probe", "success", 2.0, True),
        BreakerClosed("async-probe"),
    ]


def test_listeners_hear_how_long_a_closed_call_ran(fake_clock: FakeClock) -> None:
    """CallRecorded.duration of a closed-mode call is its time on the configured clock."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("timed-closed", THREE)
    b.add_listener(seen.append)

    def slow() -> int:
        fake_clock.advance(1.5)
        return 1

    def slow_fail() -> None:
        fake_clock.advance(0.5)
        raise BoomError

    assert b.call(slow) == 1
    with pytest.raises(BoomError):
        b.call(slow_fail)
    assert seen == [
        CallRecorded("timed-closed", "success", 1.5, False),
        CallRecorded("timed-closed", "failure", 0.5, False),
    ]


async def test_async_listeners_hear_how_long_a_closed_call_ran(fake_clock: FakeClock) -> None:
    """CallRecorded.duration of an awaited closed-mode call is its time on the clock, and a
    failure below the threshold announces nothing else."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("atimed-closed", THREE)
    b.add_listener(seen.append)

    async def slow() -> int:
        fake_clock.advance(1.5)
        return 1

    async def slow_fail() -> None:
        fake_clock.advance(0.5)
        raise BoomError

    assert await b.acall(slow) == 1
    with pytest.raises(BoomError):
        await b.acall(slow_fail)
    assert seen == [
        CallRecorded("atimed-closed", "success", 1.5, False),
        CallRecorded("atimed-closed", "failure", 0.5, False),
    ]


def test_listeners_hear_a_result_judged_a_failure_as_a_failure(fake_clock: FakeClock) -> None:
    """A value failure_result rejects is announced with outcome "failure"."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("bad-result", THREE.replace(failure_result=lambda status: status >= 500))
    b.add_listener(seen.append)
    assert b.call(lambda: 503) == 503
    assert seen == [CallRecorded("bad-result", "failure", 0.0, False)]


def test_a_probe_taken_with_the_context_manager_is_timed(fake_clock: FakeClock) -> None:
    """A half-open probe run as `with b:` reports how long it ran, as one run by call() does."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("with-probe", BreakerConfig(failure_threshold=1, reset_timeout=10))
    with pytest.raises(BoomError):
        b.call(fail)
    fake_clock.advance(10)
    b.add_listener(seen.append)
    with b:
        fake_clock.advance(2)
    assert seen == [
        BreakerHalfOpened("with-probe"),
        CallRecorded("with-probe", "success", 2.0, True),
        BreakerClosed("with-probe"),
    ]


async def test_a_probe_taken_with_the_async_context_manager_is_timed(fake_clock: FakeClock) -> None:
    """A half-open probe run as `async with b:` reports how long it ran."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("async-with-probe", BreakerConfig(failure_threshold=1, reset_timeout=10))
    with pytest.raises(BoomError):
        await b.acall(afail)
    fake_clock.advance(10)
    b.add_listener(seen.append)
    async with b:
        fake_clock.advance(2)
    assert seen == [
        BreakerHalfOpened("async-with-probe"),
        CallRecorded("async-with-probe", "success", 2.0, True),
        BreakerClosed("async-with-probe"),
    ]


def test_a_listener_added_during_a_call_hears_how_it_ended(fake_clock: FakeClock) -> None:
    """A listener added while a quiet call runs hears it end: not a probe, and untimed
    (duration 0.0), since nobody timed its start."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("late-listener", THREE)

    @b
    def joins_then_fails() -> None:
        b.add_listener(seen.append)
        fake_clock.advance(3)
        raise BoomError

    with pytest.raises(BoomError):
        joins_then_fails()
    assert seen == [CallRecorded("late-listener", "failure", 0.0, False)]


WINDOWED_RESULTS = BreakerConfig(
    failure_rate=0.5,
    window_size=2,
    minimum_calls=1,
    reset_timeout=30,
    failure_result=lambda r: r is None,
)


def test_a_listener_added_during_a_windowed_call_hears_the_trip_it_causes(
    fake_clock: FakeClock,
) -> None:
    """A listener joining while a windowed call runs hears the open its bad result causes,
    and the caller still gets the result."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("late-windowed", WINDOWED_RESULTS)

    @b
    def joins() -> None:
        b.add_listener(seen.append)

    assert joins() is None
    assert [(type(e), e.name, getattr(e, "retry_after", None)) for e in seen] == [
        (BreakerOpened, "late-windowed", 30.0)
    ]


async def test_a_listener_added_during_an_async_windowed_call_hears_the_trip_it_causes(
    fake_clock: FakeClock,
) -> None:
    """The async windowed path: a listener joining mid-call hears the open its result causes."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("alate-windowed", WINDOWED_RESULTS)

    @b
    async def joins() -> None:
        b.add_listener(seen.append)

    assert await joins() is None
    assert [(type(e), e.name, getattr(e, "retry_after", None)) for e in seen] == [
        (BreakerOpened, "alate-windowed", 30.0)
    ]


async def test_global_listeners_see_every_breaker(fake_clock: FakeClock) -> None:
    """add_listener() listens to all breakers, decorated sync and async alike."""
    seen: list[BreakerEvent] = []
    resilient.add_listener(seen.append)

    @breaker("g1")
    def one() -> int:
        return 1

    @breaker("g2")
    async def two() -> int:
        return 2

    assert one() + await two() == 3
    assert [(type(e).__name__, e.name) for e in seen] == [
        ("CallRecorded", "g1"),
        ("CallRecorded", "g2"),
    ]
    resilient.remove_listener(seen.append)
    one()
    assert len(seen) == 2


def test_a_failing_listener_is_logged_once_and_never_breaks_a_call(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken sink costs one log record, not the caller's result."""

    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("sink down")

    b = CircuitBreaker("loud", THREE)
    b.add_listener(broken)
    with caplog.at_level(logging.ERROR, logger="resilient"):
        assert [b.call(lambda: 7) for _ in range(3)] == [7, 7, 7]
    assert len(caplog.records) == 1
    assert "sink down" in caplog.text
    b.remove_listener(broken)


def test_listeners_must_be_callable() -> None:
    """Registering a non-callable listener fails at once."""
    with pytest.raises(ConfigError):
        resilient.add_listener("print")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CircuitBreaker("x").add_listener(None)  # type: ignore[arg-type]


# --- call()/acall() refuse what they cannot guard ---------------------------------------


def numbers(n: int) -> Any:
    yield from range(n)


async def anumbers(n: int) -> Any:
    for i in range(n):
        yield i


async def answer(n: int) -> int:
    return n


class Streams:
    def numbers(self, n: int) -> Any:
        yield from range(n)

    async def anumbers(self, n: int) -> Any:
        yield n


class AsyncCallable:
    async def __call__(self, n: int) -> int:
        return n


GENERATORS = pytest.mark.parametrize(
    ("target", "name"),
    [
        (numbers, "numbers"),
        (anumbers, "anumbers"),
        (Streams().numbers, "Streams.numbers"),
        (Streams().anumbers, "Streams.anumbers"),
        (functools.partial(numbers), "numbers"),
    ],
    ids=["generator", "async-generator", "generator-method", "async-generator-method", "partial"],
)


def watched(clock: FakeClock, failure_threshold: int = 1) -> tuple[CircuitBreaker, list[Any]]:
    """A breaker one failure opens, half-open (its probe free), and the events it emits."""
    b = CircuitBreaker(
        "misuse", BreakerConfig(failure_threshold=failure_threshold, reset_timeout=1)
    )
    with pytest.raises(BoomError):
        b.call(fail)
    clock.advance(1)
    assert b.mode is BreakerMode.HALF_OPEN
    seen: list[Any] = []
    b.add_listener(seen.append)
    return b, seen


def assert_nothing_counted(b: CircuitBreaker, seen: list[Any]) -> None:
    """No event, no failure, no probe taken: the next call is still the probe."""
    assert seen == []
    assert b.mode is BreakerMode.HALF_OPEN
    assert b.snapshot().probes == ()
    assert b.call(lambda: "probe") == "probe"
    assert b.mode is BreakerMode.CLOSED


@GENERATORS
def test_call_refuses_generator_functions_before_counting(
    fake_clock: FakeClock, target: Any, name: str
) -> None:
    """call() given a generator or async generator function raises TypeError, counts nothing."""
    b, seen = watched(fake_clock)
    pattern = rf"call\(\) cannot guard the generator function .*\b{re.escape(name)}\b.*consumes it"
    for _ in range(3):
        with pytest.raises(TypeError, match=pattern):
            b.call(target, 3)
    assert_nothing_counted(b, seen)


@GENERATORS
async def test_acall_refuses_generator_functions_before_counting(
    fake_clock: FakeClock, target: Any, name: str
) -> None:
    """acall() given a generator or async generator function raises TypeError, counts nothing."""
    b, seen = watched(fake_clock)
    pattern = rf"acall\(\) cannot guard the generator function .*\b{re.escape(name)}\b"
    for _ in range(3):
        with pytest.raises(TypeError, match=pattern):
            await b.acall(target, 3)
    assert_nothing_counted(b, seen)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        (answer, "answer"),
        (functools.partial(answer), "answer"),
        (AsyncCallable(), "AsyncCallable"),
    ],
    ids=["coroutine-function", "partial", "async-callable-object"],
)
def test_call_refuses_coroutine_functions_and_points_at_acall(
    fake_clock: FakeClock, target: Any, name: str
) -> None:
    """call() given an async function raises TypeError naming acall; no coroutine is made."""
    b, seen = watched(fake_clock)
    for _ in range(3):
        with pytest.raises(TypeError, match=rf"coroutine function .*\b{name}\b.*acall"):
            b.call(target, 3)
    assert_nothing_counted(b, seen)


def test_call_refuses_misuse_even_when_open(fake_clock: FakeClock) -> None:
    """An open breaker reports the misuse too, rather than a CircuitOpenError that hides it."""
    b = CircuitBreaker("misuse-open", THREE)
    trip(b)
    with pytest.raises(TypeError, match="generator function"):
        b.call(numbers, 3)
    with pytest.raises(TypeError, match="acall"):
        b.call(answer, 3)


async def test_call_and_acall_still_take_what_they_can_guard(fake_clock: FakeClock) -> None:
    """Plain functions, partials, callable objects and sync functions returning awaitables pass."""
    b = CircuitBreaker("guardable", THREE)

    class Adder:
        def __call__(self, x: int) -> int:
            return x + 1

    assert b.call(functools.partial(pow, 2), 3) == 8
    assert b.call(Adder(), 1) == 2
    assert b.call(len, "abc") == 3
    assert await b.acall(answer, 4) == 4
    assert await b.acall(functools.partial(answer, 5)) == 5
    assert await b.acall(AsyncCallable(), 6) == 6
    assert await b.acall(lambda: answer(7)) == 7
    assert b.failures == 0


# --- call() checks what other callables return; admit/record/withdraw ---------------------


class GeneratorMaker:
    """A callable object whose plain ``__call__`` hands back a generator."""

    def __call__(self, n: int) -> Any:
        return numbers(n)


class CoroutineMaker:
    """A callable object whose plain ``__call__`` hands back a coroutine."""

    def __call__(self, n: int) -> Any:
        return answer(n)


@pytest.mark.parametrize(
    ("target", "what"),
    [
        (GeneratorMaker(), "a generator"),
        (CoroutineMaker(), "a coroutine.*acall"),
        (functools.partial(anumbers), "an async generator"),
    ],
    ids=["generator", "coroutine", "async-generator"],
)
def test_call_refuses_a_callable_that_returns_what_it_cannot_guard(
    fake_clock: FakeClock, target: Any, what: str
) -> None:
    """A callable returning a generator, coroutine or async generator: TypeError, nothing
    counted, the returned object closed (no 'never awaited' warning)."""
    b = CircuitBreaker("returns-unguarded", BreakerConfig(failure_threshold=1))
    seen: list[Any] = []
    b.add_listener(seen.append)
    for _ in range(3):
        with pytest.raises(TypeError, match=rf"call\(\) cannot guard .*returned {what}"):
            b.call(target, 3)
    assert b.failures == 0
    assert b.mode is BreakerMode.CLOSED
    assert [e for e in seen if not isinstance(e, CallRecorded)] == []
    assert not any(isinstance(e, CallRecorded) and e.outcome != "ignored" for e in seen)


def test_call_refuses_a_returned_generator_in_half_open_without_taking_the_probe(
    fake_clock: FakeClock,
) -> None:
    """Half-open, a callable object returning a generator leaves the probe to the next call."""
    b, seen = watched(fake_clock)
    with pytest.raises(TypeError, match="generator"):
        b.call(GeneratorMaker(), 3)
    assert [type(e) for e in seen] == [BreakerHalfOpened]  # the time was up: no call counted
    seen.clear()
    assert_nothing_counted(b, seen)


def test_withdraw_frees_a_probe_silently_unlike_a_cancellation(fake_clock: FakeClock) -> None:
    """admit + withdraw leaves no event and no count; admit + record(cancel) says 'ignored'."""
    b, seen = watched(fake_clock)
    permit = b.admit()
    assert permit.probe
    seen.clear()  # the half-open transition itself
    b.withdraw(permit)
    assert seen == []
    assert b.snapshot().probes == ()
    assert b.mode is BreakerMode.HALF_OPEN
    permit = b.admit()
    seen.clear()
    b.record(permit, asyncio.CancelledError())
    assert [type(e) for e in seen] == [CallRecorded]
    assert seen[0].outcome == "ignored"
    assert b.snapshot().probes == ()
    b.record(b.admit(), None, "fine")
    assert b.mode is BreakerMode.CLOSED


async def test_async_admit_record_and_withdraw_count_like_acall(fake_clock: FakeClock) -> None:
    """aadmit/arecord count a failure and a success; awithdraw counts nothing."""
    b = CircuitBreaker("steps", BreakerConfig(failure_threshold=2))
    await b.arecord(await b.aadmit(), BoomError())
    assert b.failures == 1
    await b.awithdraw(await b.aadmit())
    assert b.failures == 1
    await b.arecord(await b.aadmit(), BoomError())
    assert b.opened
    with pytest.raises(CircuitOpenError):
        await b.aadmit()


class AsyncGeneratorMaker:
    """A callable object whose plain ``__call__`` hands back an async generator."""

    def __call__(self, n: int) -> Any:
        return anumbers(n)


async def test_acall_refuses_a_callable_that_returns_a_generator_uncounted(
    fake_clock: FakeClock,
) -> None:
    """acall() given a callable returning an async generator: TypeError, no failure counted."""
    b = CircuitBreaker("areturns-unguarded", BreakerConfig(failure_threshold=1))
    for target in (AsyncGeneratorMaker(), GeneratorMaker()):
        with pytest.raises(TypeError, match=r"acall\(\) cannot guard .*returned an? (async )?gen"):
            await b.acall(target, 3)
    assert b.failures == 0
    assert b.mode is BreakerMode.CLOSED
    assert await b.acall(functools.partial(answer, 4)) == 4

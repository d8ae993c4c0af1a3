"""Operating a breaker by hand and reading it: half_open(), force_open(for_=...),
last_failure, and the events around a call (the failure's exception, before_call, created).

Each test runs once per store (memory, Redis, async Redis) where the store matters.
These are the operations pybreaker, aiobreaker, circuitbreaker and purgatory users reach
for first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from strategies import BoomError, IgnoredError

import resilient
from resilient import (
    BreakerConfig,
    BreakerCreated,
    BreakerEvent,
    BreakerForcedOpen,
    BreakerHalfOpened,
    BreakerMode,
    CallAdmitted,
    CallRecorded,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    LastFailure,
    breaker,
)
from resilient.testing import FakeClock

THREE = BreakerConfig(failure_threshold=3, reset_timeout=60)


def fail() -> None:
    raise BoomError("the service is down")


async def afail() -> None:
    raise BoomError("the service is down")


def ok() -> str:
    return "ok"


async def aok() -> str:
    return "ok"


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.config.failure_threshold):
        with pytest.raises(BoomError):
            b.call(fail)


# --- half_open() by hand (pybreaker's half_open(), purgatory's manual states) ---------


def test_half_open_by_hand_lets_a_probe_through_and_its_success_closes(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """half_open() on an open breaker admits a probe at once; its success closes it."""
    b = CircuitBreaker("manual-half", THREE, store=make_store())
    trip(b)
    assert b.mode is BreakerMode.OPEN
    b.half_open()
    assert b.mode is BreakerMode.HALF_OPEN
    assert b.call(ok) == "ok"
    assert b.mode is BreakerMode.CLOSED


async def test_half_open_by_hand_then_a_failed_probe_opens_again(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """A probe failing after half_open() opens the breaker for a reset timeout."""
    b = CircuitBreaker("manual-half-async", THREE, store=make_store())
    b.half_open()
    with pytest.raises(BoomError):
        await b.acall(afail)
    assert b.mode is BreakerMode.OPEN
    assert b.retry_after == pytest.approx(60.0)


def test_half_open_by_hand_is_announced(fake_clock: FakeClock) -> None:
    """Listeners hear BreakerHalfOpened when a breaker is half-opened by hand."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("manual-half-heard", THREE)
    b.add_listener(seen.append)
    b.half_open()
    assert seen == [BreakerHalfOpened("manual-half-heard")]


# --- force_open(for_=...) that ends by itself -------------------------------------------


def test_force_open_for_a_while_rejects_then_probes(make_store: Any, fake_clock: FakeClock) -> None:
    """force_open(for_=10) rejects for 10 s, saying when; then the next call is a probe."""
    b = CircuitBreaker("forced-while", THREE, store=make_store())
    b.force_open(for_=10)
    assert b.mode is BreakerMode.FORCED_OPEN
    assert b.retry_after == pytest.approx(10.0)
    with pytest.raises(CircuitOpenError) as caught:
        b.call(ok)
    assert caught.value.retry_after == pytest.approx(10.0)
    fake_clock.advance(9.5)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    fake_clock.advance(0.5)
    assert b.mode is BreakerMode.HALF_OPEN
    assert b.call(ok) == "ok"
    assert b.mode is BreakerMode.CLOSED


async def test_force_open_for_a_while_ends_by_itself_for_async_calls(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """An async call after the forced period is a probe; its failure opens the breaker."""
    b = CircuitBreaker("forced-while-async", THREE, store=make_store())
    b.force_open(for_=timedelta(seconds=5))
    with pytest.raises(CircuitOpenError):
        await b.acall(aok)
    fake_clock.advance(5)
    with pytest.raises(BoomError):
        await b.acall(afail)
    assert b.mode is BreakerMode.OPEN


def test_force_open_without_a_duration_lasts_until_reset(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """force_open() with no duration still rejects until reset(), however long it waits."""
    b = CircuitBreaker("forced-forever", THREE, store=make_store())
    b.force_open()
    fake_clock.advance(10**6)
    with pytest.raises(CircuitOpenError) as caught:
        b.call(ok)
    assert caught.value.retry_after is None
    assert b.retry_after is None
    b.reset()
    assert b.call(ok) == "ok"


def test_force_open_for_a_while_is_announced_with_its_end(fake_clock: FakeClock) -> None:
    """BreakerForcedOpen says when the forced period ends (None: at reset)."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("forced-heard", THREE)
    b.add_listener(seen.append)
    b.force_open(for_=7)
    b.reset()
    b.force_open()
    assert [e for e in seen if isinstance(e, BreakerForcedOpen)] == [
        BreakerForcedOpen("forced-heard", 7.0),
        BreakerForcedOpen("forced-heard", None),
    ]


def test_repr_shows_when_a_forced_period_ends(fake_clock: FakeClock) -> None:
    """The repr of a breaker forced open for a while shows the seconds left."""
    b = CircuitBreaker("forced-repr", THREE)
    b.force_open(for_=12)
    fake_clock.advance(2)
    assert repr(b) == "<CircuitBreaker 'forced-repr' FORCED_OPEN ends_in=10.0s>"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "10"])
def test_force_open_refuses_a_duration_that_is_not_positive(bad: object) -> None:
    """force_open(for_=...) names for_ in the ConfigError for 0, negatives, NaN, text."""
    b = CircuitBreaker("forced-bad", THREE)
    with pytest.raises(ConfigError) as caught:
        b.force_open(for_=bad)  # type: ignore[arg-type]
    assert caught.value.parameter == "for_"
    assert b.mode is BreakerMode.CLOSED


# --- last_failure (circuitbreaker's last_failure, purgatory's failure info) -------------


def test_last_failure_holds_the_last_recorded_error_and_its_time(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """last_failure gives the type, message and clock time of the last failure recorded."""
    b = CircuitBreaker("last-failure", THREE, store=make_store())
    assert b.last_failure is None
    fake_clock.advance(5)
    with pytest.raises(BoomError):
        b.call(fail)
    assert b.last_failure == LastFailure("strategies.BoomError", "the service is down", 5.0)
    fake_clock.advance(1)

    def refused() -> None:
        raise ConnectionRefusedError("port 5432")

    with pytest.raises(ConnectionRefusedError):
        b.call(refused)
    assert b.last_failure == LastFailure("ConnectionRefusedError", "port 5432", 6.0)
    assert b.call(ok) == "ok"  # a success does not forget it
    assert b.last_failure is not None
    assert b.last_failure.at == 6.0


async def test_last_failure_is_set_by_decorated_async_calls(fake_clock: FakeClock) -> None:
    """A failing decorated coroutine function sets last_failure on its breaker."""

    @breaker("last-failure-async", THREE)
    async def call() -> None:
        raise BoomError("timeout talking to the model")

    with pytest.raises(BoomError):
        await call()
    found = resilient.get_breaker("last-failure-async").last_failure
    assert found is not None
    assert found.message == "timeout talking to the model"


def test_errors_not_recorded_as_failures_leave_last_failure_alone(fake_clock: FakeClock) -> None:
    """Ignored errors and errors record= does not name are not failures: not kept."""
    b = CircuitBreaker("last-failure-ignored", THREE.replace(ignore=IgnoredError, record=BoomError))

    def ignored() -> None:
        raise IgnoredError

    def unrecorded() -> None:
        raise KeyError("k")

    for call in (ignored, unrecorded):
        with pytest.raises((IgnoredError, KeyError)):
            b.call(call)
    assert b.last_failure is None


def test_last_failure_survives_an_error_whose_str_raises(fake_clock: FakeClock) -> None:
    """An error with a broken __str__ is still recorded, and the caller still gets it."""

    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def raise_it() -> None:
        raise UnprintableError

    b = CircuitBreaker("last-failure-unprintable", THREE)
    with pytest.raises(UnprintableError):
        b.call(raise_it)
    assert b.last_failure is not None
    assert "str() raised" in b.last_failure.message


def test_last_failure_keeps_a_bounded_message(fake_clock: FakeClock) -> None:
    """A huge error message is cut to 1000 characters (the breaker holds it for long)."""

    def huge() -> None:
        raise BoomError("x" * 100_000)

    b = CircuitBreaker("last-failure-huge", THREE)
    with pytest.raises(BoomError):
        b.call(huge)
    assert b.last_failure is not None
    assert len(b.last_failure.message) == 1000


# --- the failure event carries the exception -----------------------------------------


def test_the_failure_event_carries_the_exception_itself(fake_clock: FakeClock) -> None:
    """CallRecorded(outcome="failure").error is the very exception the caller got."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("event-error", THREE)
    b.add_listener(seen.append)
    with pytest.raises(BoomError) as caught:
        b.call(fail)
    assert b.call(ok) == "ok"
    failed, succeeded = (e for e in seen if isinstance(e, CallRecorded))
    assert failed.outcome == "failure"
    assert failed.error is caught.value
    assert succeeded.outcome == "success"
    assert succeeded.error is None


async def test_the_async_failure_event_carries_the_exception(fake_clock: FakeClock) -> None:
    """A global listener gets the exception of a failed decorated coroutine call."""
    seen: list[BreakerEvent] = []
    resilient.add_listener(seen.append)

    @breaker("event-error-async", THREE)
    async def call() -> None:
        await afail()

    with pytest.raises(BoomError) as caught:
        await call()
    resilient.remove_listener(seen.append)
    recorded = [e for e in seen if isinstance(e, CallRecorded)]
    assert [e.error for e in recorded] == [caught.value]


async def test_an_error_settled_in_explicit_steps_reaches_the_event(fake_clock: FakeClock) -> None:
    """record(permit, error) and arecord(permit, error) hand listeners the error too."""
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("event-error-steps", THREE)
    b.add_listener(seen.append)
    first, second = BoomError("sync"), BoomError("async")
    b.record(b.admit(), first)
    await b.arecord(await b.aadmit(), second)
    recorded = [e for e in seen if isinstance(e, CallRecorded)]
    assert [(e.outcome, e.error) for e in recorded] == [("failure", first), ("failure", second)]


# --- before_call: CallAdmitted (pybreaker's before_call) --------------------------------


def test_before_call_listeners_hear_each_admitted_call_before_it_runs(
    fake_clock: FakeClock,
) -> None:
    """CallAdmitted reaches a before_call listener before the call; rejected calls, none."""
    order: list[str] = []
    b = CircuitBreaker("before-call", BreakerConfig(failure_threshold=1, reset_timeout=10))
    b.add_listener(lambda e: order.append(type(e).__name__), before_call=True)

    def work() -> None:
        order.append("work")
        raise BoomError

    with pytest.raises(BoomError):
        b.call(work)
    with pytest.raises(CircuitOpenError):
        b.call(work)
    assert order == ["CallAdmitted", "work", "CallRecorded", "BreakerOpened", "CallRejected"]


async def test_before_call_says_whether_the_call_is_a_probe(fake_clock: FakeClock) -> None:
    """A global before_call listener hears probe=True for a half-open probe."""
    seen: list[BreakerEvent] = []
    resilient.add_listener(seen.append, before_call=True)
    b = CircuitBreaker("before-call-probe", BreakerConfig(failure_threshold=1, reset_timeout=10))
    with pytest.raises(BoomError):
        await b.acall(afail)
    fake_clock.advance(10)
    assert await b.acall(aok) == "ok"
    resilient.remove_listener(seen.append)
    assert [e for e in seen if isinstance(e, CallAdmitted)] == [
        CallAdmitted("before-call-probe", False),
        CallAdmitted("before-call-probe", True),
    ]


def test_plain_listeners_never_hear_before_call(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a before_call listener no CallAdmitted is even built, listeners or not."""
    from resilient._runtime import events

    built: list[object] = []

    class Counting(events.CallAdmitted):
        __slots__ = ()

        def __init__(self, *args: Any) -> None:
            built.append(args)
            super().__init__(*args)

    monkeypatch.setattr(events, "CallAdmitted", Counting)
    seen: list[BreakerEvent] = []
    b = CircuitBreaker("before-call-quiet", THREE)
    b.add_listener(seen.append)
    b.call(ok)
    assert built == []
    assert [type(e) for e in seen] == [CallRecorded]


# --- created: BreakerCreated (purgatory's circuit_breaker_created) -----------------------


def test_created_listeners_hear_each_breaker_made(fake_clock: FakeClock) -> None:
    """A created=True listener hears BreakerCreated for each breaker, with its config."""
    seen: list[BreakerEvent] = []
    resilient.add_listener(seen.append, created=True)

    @breaker("created-decorated", THREE)
    def f() -> str:
        return "ok"

    CircuitBreaker("created-by-hand")
    breaker("created-decorated", THREE)  # the same breaker again: not made twice
    resilient.remove_listener(seen.append)
    CircuitBreaker("created-after-removal")
    assert [e for e in seen if isinstance(e, BreakerCreated)] == [
        BreakerCreated("created-decorated", THREE),
        BreakerCreated("created-by-hand", BreakerConfig.standard),
    ]


def test_plain_listeners_never_hear_created(fake_clock: FakeClock) -> None:
    """A listener registered without created=True hears nothing when a breaker is made."""
    seen: list[BreakerEvent] = []
    resilient.add_listener(seen.append)
    CircuitBreaker("created-unheard")
    resilient.remove_listener(seen.append)
    assert seen == []

"""@breaker on generator and async generator functions: admitted when iteration starts,
one outcome per stream when it ends."""

from __future__ import annotations

import asyncio

import pytest
from scripted import Kind, Script, Wait

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient.testing import FakeClock

ONE = BreakerConfig(failure_threshold=1, reset_timeout=10)
TWO = BreakerConfig(failure_threshold=2, reset_timeout=10)


def guarded(kind: Kind, script: Script, name: str, config: BreakerConfig = TWO) -> object:
    return resilient.breaker(name, config)(kind.producer(script))


def half_open(name: str, clock: FakeClock) -> CircuitBreaker:
    """The breaker ``name`` opened by one failure and waited out: its probe is free."""
    b = resilient.get_breaker(name)
    with pytest.raises(ConnectionError):
        b.call(_fail)
    clock.advance(10)
    assert b.mode is BreakerMode.HALF_OPEN
    return b


def _fail() -> None:
    raise ConnectionError("down")


async def test_a_stream_run_to_its_end_is_a_success(kind: Kind, fake_clock: FakeClock) -> None:
    """Half-open, a stream that is exhausted is a successful probe: the breaker closes."""
    script = Script([[1, 2]])
    stream = guarded(kind, script, "stream-ok", ONE)
    b = half_open("stream-ok", fake_clock)
    assert await kind.drain(stream()) == [1, 2]  # type: ignore[operator]
    assert b.mode is BreakerMode.CLOSED


async def test_a_stream_that_raises_is_a_failure(kind: Kind, fake_clock: FakeClock) -> None:
    """A stream failing, before or after items, counts one failure each time."""
    script = Script([[ConnectionError("early")], [1, ConnectionError("late")]])
    stream = guarded(kind, script, "stream-fails")
    b = resilient.get_breaker("stream-fails")
    with pytest.raises(ConnectionError, match="early"):
        await kind.drain(stream())  # type: ignore[operator]
    assert b.failures == 1
    with pytest.raises(ConnectionError, match="late"):
        await kind.drain(stream())  # type: ignore[operator]
    assert b.mode is BreakerMode.OPEN


async def test_an_open_breaker_rejects_when_iteration_starts(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """Calling the function is free; the first next() of an open breaker's stream is refused."""
    script = Script([[1]])
    stream = guarded(kind, script, "stream-open")
    resilient.get_breaker("stream-open").force_open()
    items = stream()  # type: ignore[operator]
    with pytest.raises(CircuitOpenError):
        await kind.next(items)
    assert script.started == 0


async def test_admission_happens_at_the_first_item_not_at_the_call(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """A stream created while the breaker was open runs if the breaker closed before it is read."""
    script = Script([[1]])
    stream = guarded(kind, script, "stream-late")
    b = resilient.get_breaker("stream-late")
    b.force_open()
    items = stream()  # type: ignore[operator]
    b.reset()
    assert await kind.drain(items) == [1]


async def test_a_stream_closed_early_counts_neither_way(kind: Kind, fake_clock: FakeClock) -> None:
    """break/close() after some items is neither a success nor a failure: nothing is recorded."""
    script = Script([[1, 2, 3]])
    stream = guarded(kind, script, "stream-closed", ONE)
    b = half_open("stream-closed", fake_clock)
    seen: list[object] = []
    b.add_listener(seen.append)
    assert await kind.take(stream(), 1) == [1]  # type: ignore[operator]
    assert script.closed == 1
    assert b.mode is BreakerMode.HALF_OPEN
    recorded = [e for e in seen if type(e).__name__ == "CallRecorded"]
    assert [e.outcome for e in recorded] == ["ignored"]  # type: ignore[attr-defined]
    # The probe's slot was released: the next stream is the probe, and closes the breaker.
    assert await kind.drain(stream()) == [1, 2, 3]  # type: ignore[operator]
    assert b.mode is BreakerMode.CLOSED


async def test_a_cancelled_async_stream_frees_the_probe(fake_clock: FakeClock) -> None:
    """A cancellation while the stream runs is not a failure, and frees the half-open slot."""
    kind = Kind("async")
    script = Script([[Wait(100), 1], [1]])
    stream = guarded(kind, script, "stream-cancelled", ONE)
    b = half_open("stream-cancelled", fake_clock)
    task = asyncio.create_task(kind.drain(stream()))  # type: ignore[operator]
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.mode is BreakerMode.HALF_OPEN
    assert b.snapshot().probes == ()
    assert await kind.drain(stream()) == [1]  # type: ignore[operator]
    assert b.mode is BreakerMode.CLOSED


async def test_keyboard_interrupt_is_not_a_failure(kind: Kind, fake_clock: FakeClock) -> None:
    """An interrupt passes through the stream and counts nothing."""
    script = Script([[1, KeyboardInterrupt()]])
    stream = guarded(kind, script, "stream-interrupt")
    with pytest.raises(KeyboardInterrupt):
        await kind.drain(stream())  # type: ignore[operator]
    assert resilient.get_breaker("stream-interrupt").failures == 0


async def test_a_breaker_inside_retry_counts_every_attempt(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """Retry around a breaker: each failed run of the stream is one failure."""
    script = Script([[ConnectionError("a")], [ConnectionError("b")], [1]])
    stream = resilient.retry(attempts=3)(guarded(kind, script, "stream-retried", TWO))
    with pytest.raises(CircuitOpenError):
        await kind.drain(stream())
    assert script.started == 2


async def test_a_stream_that_trips_raises_circuit_open_with_error_on_trip(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """With error_on_trip="open", the stream failure that trips the breaker reaches the
    consumer as CircuitOpenError chained to it, as a call's does."""
    error = ConnectionError("down")
    script = Script([[1, error]])
    config = BreakerConfig(failure_threshold=1, reset_timeout=10, error_on_trip="open")
    stream = guarded(kind, script, "stream-trips-open", config)
    with pytest.raises(CircuitOpenError) as caught:
        await kind.drain(stream())  # type: ignore[operator]
    assert caught.value.__cause__ is error
    assert resilient.get_breaker("stream-trips-open").mode is BreakerMode.OPEN


async def test_listeners_hear_the_streams_error(kind: Kind, fake_clock: FakeClock) -> None:
    """A failed stream's CallRecorded event carries the exception the producer raised."""
    error = ConnectionError("down")
    script = Script([[error]])
    stream = guarded(kind, script, "stream-recorded")
    heard: list[object] = []
    resilient.get_breaker("stream-recorded").add_listener(heard.append)
    with pytest.raises(ConnectionError):
        await kind.drain(stream())  # type: ignore[operator]
    recorded = [e for e in heard if isinstance(e, resilient.CallRecorded)]
    assert [(e.outcome, e.error) for e in recorded] == [("failure", error)]

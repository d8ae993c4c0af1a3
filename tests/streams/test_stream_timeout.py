"""@timeout on generator and async generator functions: a budget for the whole stream and,
with ``per_item=``, for each wait between two items."""

from __future__ import annotations

import asyncio
import threading

import pytest
from scripted import LOOK, Kind, Script, Wait

import resilient
from resilient.exceptions import ConfigError, TimeoutExceededError
from resilient.testing import FakeClock


async def test_a_stream_within_its_budget_is_delivered_whole(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """Items that all arrive before the deadline reach the caller untouched."""
    script = Script([[1, Wait(1), 2, Wait(1), 3]])
    stream = resilient.timeout(5)(kind.producer(script))
    assert await kind.drain(stream()) == [1, 2, 3]
    assert script.ended == 1


async def test_the_budget_covers_the_whole_stream(kind: Kind, fake_clock: FakeClock) -> None:
    """Each gap is short, but the stream as a whole outlasts its budget: it times out."""
    script = Script([[1, Wait(2), 2, Wait(2), 3, Wait(2), 4]])
    stream = resilient.timeout(5)(kind.producer(script))()
    got = [await kind.next(stream), await kind.next(stream), await kind.next(stream)]
    assert got == [1, 2, 3]
    with pytest.raises(TimeoutExceededError) as caught:
        await kind.next(stream)
    assert caught.value.seconds == 5
    assert fake_clock.monotonic() == 5
    assert script.ended == 1  # the producer was stopped at the deadline


async def test_the_budget_starts_with_the_first_item_asked_for(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """Time between the call and the first next() is not counted against the stream."""
    script = Script([[Wait(3), 1]])
    stream = resilient.timeout(5)(kind.producer(script))()
    fake_clock.advance(10)
    assert await kind.drain(stream) == [1]


async def test_per_item_bounds_each_gap(kind: Kind, fake_clock: FakeClock) -> None:
    """A gap longer than per_item times out, though the whole budget is far from spent."""
    script = Script([[1, Wait(0.5), 2, Wait(3), 3]])
    stream = resilient.timeout(60, per_item=1)(kind.producer(script))()
    assert [await kind.next(stream), await kind.next(stream)] == [1, 2]
    with pytest.raises(TimeoutExceededError) as caught:
        await kind.next(stream)
    assert caught.value.reason == "the producer gave no item within per_item=1s"
    assert fake_clock.monotonic() == pytest.approx(1.5)
    assert script.ended == 1


async def test_per_item_also_bounds_the_first_item(kind: Kind, fake_clock: FakeClock) -> None:
    """The wait for the first item is a gap too."""
    script = Script([[Wait(2), 1]])
    stream = resilient.timeout(60, per_item=1)(kind.producer(script))
    with pytest.raises(TimeoutExceededError):
        await kind.drain(stream())


async def test_the_producer_sees_its_deadline(kind: Kind, fake_clock: FakeClock) -> None:
    """resilient.remaining() inside the producer is the nearer of the two budgets."""
    script = Script([[LOOK, 1, Wait(4), LOOK, 2]])
    stream = resilient.timeout(5, per_item=2)(kind.producer(script))
    with pytest.raises(TimeoutExceededError):
        await kind.drain(stream())
    script = Script([[LOOK, 1, Wait(1.5), LOOK, 2, Wait(1), LOOK, 3]])
    stream = resilient.timeout(3, per_item=2)(kind.producer(script))
    assert await kind.drain(stream()) == [1, 2, 3]
    assert script.seen == [2, 0.5, 0.5]


async def test_the_consumer_is_outside_the_deadline(kind: Kind, fake_clock: FakeClock) -> None:
    """Between items the consumer's own code sees no deadline of the stream."""
    script = Script([[1, 2]])
    seen = []
    stream = resilient.timeout(5)(kind.producer(script))
    if kind.is_async:
        async for _ in stream():
            seen.append(resilient.remaining())
    else:
        for _ in stream():
            seen.append(resilient.remaining())
    assert seen == [None, None]


async def test_a_late_item_is_not_delivered(fake_clock: FakeClock) -> None:
    """Sync: an item that arrives after the deadline is a timeout; the producer is closed."""

    @resilient.timeout(1)
    def stream() -> object:
        yield 1
        fake_clock.advance(5)  # blocked in code that no deadline reaches
        yield 2

    items = stream()
    assert next(items) == 1
    with pytest.raises(TimeoutExceededError) as caught:
        next(items)
    assert caught.value.late_by == 4
    assert items.gi_frame is None


async def test_nested_timeouts_keep_the_nearer_deadline(kind: Kind, fake_clock: FakeClock) -> None:
    """An inner stream timeout longer than the outer one cannot extend it."""
    script = Script([[LOOK, 1]])
    with pytest.warns(resilient.ResilienceWarning, match="can never fire"):
        stream = resilient.timeout(2)(resilient.timeout(10)(kind.producer(script)))
    assert await kind.drain(stream()) == [1]
    assert script.seen == [2]


async def test_async_producer_is_cancelled_at_the_deadline(fake_clock: FakeClock) -> None:
    """An async producer waiting past the deadline receives the cancellation at once."""
    script = Script([[1, Wait(100), 2]])
    stream = resilient.timeout(3)(Kind("async").producer(script))
    with pytest.raises(TimeoutExceededError):
        await Kind("async").drain(stream())
    assert script.cancelled == 1
    assert asyncio.get_running_loop().time() == pytest.approx(fake_clock.monotonic())


async def test_a_timeout_stream_uses_no_thread(kind: Kind, fake_clock: FakeClock) -> None:
    """The stream runs on the consumer's thread: no worker thread is started or left."""
    before = threading.active_count()
    script = Script([[1, Wait(10), 2]])
    stream = resilient.timeout(1)(kind.producer(script))
    with pytest.raises(TimeoutExceededError):
        await kind.drain(stream())
    assert threading.active_count() == before


@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_a_sync_stream_is_bounded_on_the_consumers_thread(
    fake_clock: FakeClock, strategy: str
) -> None:
    """Either strategy bounds a sync stream in the consumer's thread, between items."""
    threads: list[int] = []

    @resilient.timeout(2, strategy=strategy)  # type: ignore[arg-type]
    def stream() -> object:
        threads.append(threading.get_ident())
        yield 1
        fake_clock.sleep(5)
        yield 2

    items = stream()
    assert next(items) == 1
    with pytest.raises(TimeoutExceededError):
        next(items)
    assert threads == [threading.get_ident()]


def test_per_item_is_refused_on_a_plain_function() -> None:
    """per_item= has no meaning for a call: applying it to one raises ConfigError."""
    with pytest.raises(ConfigError, match="per_item") as caught:

        @resilient.timeout(5, per_item=1)
        def call() -> int:
            return 1

    assert "not a generator function" in caught.value.allowed


def test_per_item_is_described() -> None:
    """describe() shows per_item when it is set."""
    assert resilient.timeout(5, per_item=1).layer.describe()["per_item"] == 1.0
    assert "per_item" not in resilient.timeout(5).layer.describe()


def test_a_streams_description_shows_what_applies_to_it(kind: Kind) -> None:
    """describe() of a timed stream shows its seconds and per_item, not the sync call's
    strategy or max_threads, which a stream does not use."""
    timed = resilient.timeout(5, strategy="signal", max_threads=4, per_item=1)
    (step,) = resilient.describe(timed(kind.producer(Script([[1]]))))
    assert step == {"layer": "timeout", "seconds": 5.0, "per_item": 1.0}
    assert str(resilient.describe(resilient.timeout(5)(kind.producer(Script([[1]]))))) == (
        "1. timeout: seconds=5"
    )

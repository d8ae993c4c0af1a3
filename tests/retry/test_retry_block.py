"""retrying()/aretrying(): the block form, as tenacity's ``for attempt in Retrying()``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

import pytest
import tenacity

import resilient
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


class Flaky:
    """Fails ``failures`` times with a fresh ``ConnectionError``, then returns ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"down #{self.calls}")
        return "ok"


def run(block: Iterable[Any], body: Callable[[], object]) -> None:
    """``for attempt in block: with attempt: body()``."""
    for attempt in block:
        with attempt:
            body()


async def arun(block: AsyncIterable[Any], body: Callable[[], object]) -> None:
    """``async for attempt in block: with attempt: body()``."""
    async for attempt in block:
        with attempt:
            body()


def test_a_block_that_succeeds_runs_once(fake_clock: FakeClock) -> None:
    """A block that does not raise is run once and ends the loop."""
    runs = 0
    for attempt in resilient.retrying():
        with attempt:
            runs += 1
    assert runs == 1
    assert fake_clock.sleeps == []


def test_a_failing_block_is_retried_with_the_backoff(fake_clock: FakeClock) -> None:
    """The block runs again after each failure, waiting the schedule, until it succeeds."""
    flaky = Flaky(2)
    numbers = []
    for attempt in resilient.retrying(initial_delay=1, jitter=0):
        with attempt:
            numbers.append(attempt.number)
            result = flaky()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert fake_clock.sleeps == [1.0, 2.0]


def test_the_last_error_is_raised_with_its_note(fake_clock: FakeClock) -> None:
    """When the attempts run out, the for statement raises the block's own last error."""
    flaky = Flaky(10)
    block = resilient.retrying(attempts=3, initial_delay=0, name="sync-orders")
    with pytest.raises(ConnectionError, match="down #3") as caught:
        run(block, flaky)
    assert flaky.calls == 3
    assert (
        "resilient.retrying gave up on sync-orders after 3 attempts" in (caught.value.__notes__[-1])
    )


def test_an_error_not_in_on_is_raised_at_once(fake_clock: FakeClock) -> None:
    """on= filters the errors worth another attempt, as with @retry."""
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        run(resilient.retrying(on=ConnectionError), body)
    assert len(runs) == 1


def test_cancellation_and_exits_pass_through(fake_clock: FakeClock) -> None:
    """A KeyboardInterrupt in the block is never kept nor retried."""
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(resilient.retrying(), body)
    assert len(runs) == 1


def test_the_block_respects_the_deadline(fake_clock: FakeClock) -> None:
    """Inside a @timeout, a wait that would end past the deadline ends the retries."""
    flaky = Flaky(10)

    @resilient.timeout(3)
    def guarded() -> None:
        for attempt in resilient.retrying(attempts=10, initial_delay=2, jitter=0):
            with attempt:
                flaky()

    with pytest.raises(ConnectionError) as caught:
        guarded()
    assert flaky.calls == 2  # waits 2 s, then a 4 s wait does not fit in the 1 s left
    assert "before the deadline" in caught.value.__notes__[-1]


def test_hooks_metrics_events_and_stats(fake_clock: FakeClock, sink: MemorySink) -> None:
    """A block runs before/after/on_retry, counts retry_attempts_total, emits events and
    keeps statistics under its name."""
    seen: list[object] = []
    events: list[object] = []
    resilient.add_listener(events.append)
    block = resilient.retrying(
        name="poll",
        initial_delay=0,
        before=lambda n: seen.append(("before", n)),
        after=lambda n, e: seen.append(("after", n)),
        on_retry=lambda n, e, d: seen.append(("on_retry", n)),
    )
    flaky = Flaky(1)
    for attempt in block:
        with attempt:
            flaky()
    assert seen == [("before", 1), ("after", 1), ("on_retry", 1), ("before", 2)]
    assert sink.counter("retry_attempts_total", policy="poll") == 1
    assert [(type(e), e.name) for e in events] == [(resilient.RetryScheduled, "poll")]  # type: ignore[attr-defined]
    assert resilient.stats(block).retries == 1


def test_a_block_is_reusable(fake_clock: FakeClock) -> None:
    """Each for loop over the same retrying() object is a new call with its own attempts."""
    block = resilient.retrying(attempts=2, initial_delay=0)
    for _ in range(3):
        flaky = Flaky(1)
        for attempt in block:
            with attempt:
                flaky()
        assert flaky.calls == 2


def test_tenacity_strategies_in_a_block(fake_clock: FakeClock) -> None:
    """stop=/wait= take tenacity strategies, as with @retry."""
    flaky = Flaky(10)
    block = resilient.retrying(stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_fixed(0.5))
    with pytest.raises(ConnectionError):
        run(block, flaky)
    assert flaky.calls == 4
    assert fake_clock.sleeps == [0.5, 0.5, 0.5]


def test_testing_instant_applies_to_blocks(fake_clock: FakeClock) -> None:
    """resilient.testing.instant() caps a block's attempts and removes its waits."""
    flaky = Flaky(10)
    with resilient.testing.instant(2), pytest.raises(ConnectionError):
        run(resilient.retrying(attempts=5, initial_delay=3), flaky)
    assert flaky.calls == 2
    assert fake_clock.sleeps == []


def test_a_bad_name_is_a_config_error() -> None:
    """name= must be non-empty text."""
    with pytest.raises(resilient.ConfigError, match="name"):
        resilient.retrying(name="")


# --- async ---------------------------------------------------------------------------------


async def test_async_block_retries_and_waits_on_the_loop(fake_clock: FakeClock) -> None:
    """async for attempt in aretrying(): with attempt: retries with awaited waits."""
    flaky = Flaky(2)
    async for attempt in resilient.aretrying(initial_delay=1, jitter=0):
        with attempt:
            await asyncio.sleep(0)
            result = flaky()
    assert result == "ok"
    assert fake_clock.sleeps == [1.0, 2.0]


async def test_async_block_raises_the_last_error(fake_clock: FakeClock) -> None:
    """When the rules say stop, async for raises the block's last error."""
    flaky = Flaky(10)
    with pytest.raises(ConnectionError, match="down #2"):
        await arun(resilient.aretrying(attempts=2, initial_delay=0), flaky)


async def test_async_block_lets_cancellation_through(fake_clock: FakeClock) -> None:
    """Cancelling the task running the block cancels it; the block is not retried."""
    runs = 0

    async def work() -> None:
        nonlocal runs
        async for attempt in resilient.aretrying():
            with attempt:
                runs += 1
                await asyncio.sleep(60)

    task = asyncio.ensure_future(work())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 1


def test_testing_disabled_makes_one_attempt(fake_clock: FakeClock) -> None:
    """Under resilient.testing.disabled() a block runs once, as a decorated call would."""
    flaky = Flaky(1)
    with resilient.testing.disabled(), pytest.raises(ConnectionError):
        run(resilient.retrying(initial_delay=0), flaky)
    assert flaky.calls == 1


async def test_async_testing_disabled_makes_one_attempt(fake_clock: FakeClock) -> None:
    """Under resilient.testing.disabled() an async block runs once too."""
    flaky = Flaky(1)
    with resilient.testing.disabled(), pytest.raises(ConnectionError):
        await arun(resilient.aretrying(initial_delay=0), flaky)
    assert flaky.calls == 1


def test_blocks_written_inline_share_their_statistics(fake_clock: FakeClock) -> None:
    """retrying(...) written inside a function is built once per settings: its stats add up."""

    def sync_once(flaky: Flaky) -> None:
        for attempt in resilient.retrying(initial_delay=0, name="inline"):
            with attempt:
                flaky()

    sync_once(Flaky(1))
    sync_once(Flaky(1))
    stats = resilient.stats(resilient.retrying(initial_delay=0, name="inline"))
    assert (stats.retried_calls, stats.retries) == (2, 2)


def test_a_block_ending_in_stop_iteration_does_not_end_the_loop_quietly(
    fake_clock: FakeClock,
) -> None:
    """A block whose last attempt raised StopIteration fails the for statement (the error
    as the cause of a RuntimeError, as PEP 479 does) instead of ending it as a success."""
    error = StopIteration()

    def empty() -> None:
        raise error

    with pytest.raises(RuntimeError) as caught:
        run(resilient.retrying(attempts=2, initial_delay=0), empty)
    assert caught.value.__cause__ is error
    with resilient.testing.disabled(), pytest.raises(RuntimeError) as caught:
        run(resilient.retrying(attempts=2, initial_delay=0), empty)
    assert caught.value.__cause__ is error


async def test_an_async_block_ending_in_stop_async_iteration_fails_the_loop(
    fake_clock: FakeClock,
) -> None:
    """The same for async for and StopAsyncIteration (from an exhausted async iterator)."""
    error = StopAsyncIteration()

    def empty() -> None:
        raise error

    with pytest.raises(RuntimeError) as caught:
        await arun(resilient.aretrying(attempts=2, initial_delay=0), empty)
    assert caught.value.__cause__ is error

"""@timeout under the injected clock: which function the error names, and how late it was."""

from __future__ import annotations

import asyncio
import threading

import pytest

import resilient
from resilient import TimeoutExceededError, timeout
from resilient.metrics import MemorySink
from resilient.testing import FakeClock, use_clock


@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_a_sync_call_seen_back_late_is_a_timeout_naming_it(
    fake_clock: FakeClock, strategy: str
) -> None:
    """A call that returns with the clock past its deadline raises TimeoutExceededError
    naming the function, late by what the clock says."""

    @timeout(45, strategy=strategy)
    def grade() -> str:
        fake_clock.advance(45.5)
        return "too late"

    with pytest.raises(TimeoutExceededError) as caught:
        grade()
    assert caught.value.name.endswith(
        "test_a_sync_call_seen_back_late_is_a_timeout_naming_it.<locals>.grade"
    )
    assert caught.value.late_by == pytest.approx(0.5)


@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_a_sleep_reaching_the_deadline_is_a_timeout_naming_the_function(
    fake_clock: FakeClock, strategy: str
) -> None:
    """A clock sleep that reaches the deadline ends the call with an error naming it."""

    @timeout(45, strategy=strategy)
    def grade() -> str:
        fake_clock.sleep(60)
        return "never"

    with pytest.raises(TimeoutExceededError) as caught:
        grade()
    assert caught.value.name.endswith(".<locals>.grade")
    assert fake_clock.monotonic() == 45


async def test_an_async_call_seen_back_late_is_a_timeout_naming_it(fake_clock: FakeClock) -> None:
    """An async call that returns with the clock past its deadline is a timeout, late by
    what the clock says."""

    @timeout(45)
    async def grade() -> str:
        fake_clock.advance(46)
        return "too late"

    with pytest.raises(TimeoutExceededError) as caught:
        await grade()
    assert caught.value.name.endswith(".<locals>.grade")
    assert caught.value.late_by == pytest.approx(1.0)


@pytest.mark.realtime
async def test_an_async_call_past_its_budget_names_the_function(fake_clock: FakeClock) -> None:
    """Under a custom clock an async call still waiting when the event loop's timeout
    fires is cancelled, and the error names the function."""

    @timeout(0.02)
    async def grade() -> str:
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(TimeoutExceededError) as caught:
        await grade()
    assert caught.value.name.endswith(".<locals>.grade")


@pytest.mark.realtime
def test_a_sync_call_that_finishes_before_autojump_returns() -> None:
    """With an autojump clock, a sync call that answers within the autojump time returns
    its result and the clock does not jump."""
    clock = FakeClock(autojump=0.5)
    answered = threading.Event()

    @timeout(45)
    def grade() -> str:
        answered.wait(0.02)
        return "in time"

    with use_clock(clock):
        assert grade() == "in time"
    assert clock.monotonic() == 0


@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_sync_arguments_arrive_with_metrics_on(strategy: str) -> None:
    """With metrics on, a timed sync call still gets its positional and keyword arguments."""
    resilient.configure(metrics=MemorySink())

    @timeout(5, strategy=strategy)
    def greet(name: str, *, punctuation: str) -> str:
        return f"hello {name}{punctuation}"

    assert greet("Ada", punctuation="!") == "hello Ada!"


async def test_async_arguments_arrive_with_metrics_on() -> None:
    """With metrics on, a timed async call still gets its positional and keyword arguments."""
    resilient.configure(metrics=MemorySink())

    @timeout(5)
    async def greet(name: str, *, punctuation: str) -> str:
        return f"hello {name}{punctuation}"

    assert await greet("Ada", punctuation="!") == "hello Ada!"


def test_an_inner_signal_timeout_keeps_the_earlier_outer_deadline() -> None:
    """Inside a longer signal timeout nested in a shorter one, remaining() is the shorter."""

    @timeout(10, strategy="signal")
    def inner() -> float | None:
        return resilient.remaining()

    @timeout(0.5, strategy="signal")
    def outer() -> float | None:
        return inner()

    left = outer()
    assert left is not None
    assert left <= 0.5

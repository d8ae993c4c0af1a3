"""Listeners hear retries, fallbacks and timeouts; resilient.stats(fn) counts what retry did."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import resilient
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


@pytest.fixture
def heard() -> list[object]:
    """Every event resilient emits during the test."""
    events: list[object] = []
    resilient.add_listener(events.append)
    return events


# --- events -------------------------------------------------------------------------------


def test_each_retry_is_an_event_with_attempt_error_and_delay(
    fake_clock: FakeClock, heard: list[object]
) -> None:
    """RetryScheduled carries the function, the failed attempt, its error and the wait."""
    flaky = Flaky(2)

    @resilient.retry(initial_delay=1, jitter=0)
    def call() -> str:
        return flaky()

    call()
    name = f"{__name__}.{call.__qualname__}"
    assert [(type(e), e.attempt, str(e.error), e.delay) for e in heard] == [  # type: ignore[attr-defined]
        (resilient.RetryScheduled, 1, "down #1", 1.0),
        (resilient.RetryScheduled, 2, "down #2", 2.0),
    ]
    assert {e.name for e in heard} == {name}  # type: ignore[attr-defined]


def test_giving_up_is_an_event_with_the_callers_error(
    fake_clock: FakeClock, heard: list[object]
) -> None:
    """RetryGaveUp carries the number of attempts and the error the caller gets."""
    flaky = Flaky(10)
    with pytest.raises(ConnectionError) as caught:
        resilient.retry(attempts=2, initial_delay=0)(flaky)()
    gave_up = heard[-1]
    assert isinstance(gave_up, resilient.RetryGaveUp)
    assert (gave_up.attempts, gave_up.error) == (2, caught.value)


def test_events_are_frozen(fake_clock: FakeClock, heard: list[object]) -> None:
    """Events are frozen dataclasses: a listener cannot change what others see."""
    resilient.retry(initial_delay=0)(Flaky(1))()
    with pytest.raises(dataclasses.FrozenInstanceError):
        heard[0].delay = 5  # type: ignore[attr-defined]


async def test_async_retry_events(fake_clock: FakeClock, heard: list[object]) -> None:
    """The async loop emits the same events."""
    flaky = Flaky(1)

    @resilient.retry(initial_delay=0)
    async def call() -> str:
        return flaky()

    await call()
    assert [type(e) for e in heard] == [resilient.RetryScheduled]


def test_a_timeout_is_an_event(fake_clock: FakeClock, heard: list[object]) -> None:
    """TimeoutExceeded names the function and its budget."""

    @resilient.timeout(2)
    def slow() -> None:
        fake_clock.sleep(5)

    with pytest.raises(resilient.TimeoutExceededError):
        slow()
    [event] = [e for e in heard if isinstance(e, resilient.TimeoutExceeded)]
    assert (event.name, event.seconds) == (f"{__name__}.{slow.__qualname__}", 2.0)


async def test_an_async_timeout_is_an_event(fake_clock: FakeClock, heard: list[object]) -> None:
    """The async timeout emits TimeoutExceeded too."""
    import asyncio

    @resilient.timeout(1)
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(resilient.TimeoutExceededError):
        await slow()
    assert [type(e) for e in heard] == [resilient.TimeoutExceeded]


def test_a_fallback_is_an_event_with_the_error(fake_clock: FakeClock, heard: list[object]) -> None:
    """FallbackUsed names the function and carries the error that triggered it."""
    error = ConnectionError("down")

    @resilient.fallback("cached")
    def call() -> str:
        raise error

    assert call() == "cached"
    [event] = heard
    assert isinstance(event, resilient.FallbackUsed)
    assert (event.policy, event.error) == (f"{__name__}.{call.__qualname__}", error)


def test_nothing_is_built_without_listeners() -> None:
    """With no listener, retries and timeouts build no event: the module defining the
    events is not even imported."""
    code = (
        "import sys, resilient\n"
        "from resilient.testing import FakeClock\n"
        "resilient.configure(clock=FakeClock())\n"
        "calls = []\n"
        "@resilient.retry(attempts=3, initial_delay=0)\n"
        "def flaky():\n"
        "    calls.append(1)\n"
        "    raise ConnectionError\n"
        "try:\n"
        "    flaky()\n"
        "except ConnectionError:\n"
        "    pass\n"
        "print(len(calls), 'resilient._runtime.events' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "False"]


# --- statistics ---------------------------------------------------------------------------


def test_stats_count_attempts_retries_waits_and_the_last_error(fake_clock: FakeClock) -> None:
    """After a call that succeeds at its third attempt: 3 attempts, 2 retries, 3 s waited."""
    flaky = Flaky(2)

    @resilient.retry(initial_delay=1, jitter=0)
    def call() -> str:
        return flaky()

    call()
    stats = resilient.stats(call)
    assert (stats.retried_calls, stats.attempts, stats.retries, stats.gave_up) == (1, 3, 2, 0)
    assert stats.idle_for == 3.0
    assert stats.attempt_number == 3
    assert str(stats.last_error) == "down #2"


def test_stats_count_give_ups_and_skip_first_time_successes(fake_clock: FakeClock) -> None:
    """Calls that succeed at once are not counted; calls that give up are."""
    flaky = Flaky(10)
    retried = resilient.retry(attempts=2, initial_delay=0)(flaky)
    ok = resilient.retry()(Flaky(0))
    ok()
    with pytest.raises(ConnectionError):
        retried()
    assert resilient.stats(ok) == resilient.RetryStats()
    stats = resilient.stats(retried)
    assert (stats.retried_calls, stats.attempts, stats.gave_up) == (1, 2, 1)


def test_stats_are_reset_by_testing_reset(fake_clock: FakeClock) -> None:
    """resilient.testing.reset() zeroes every function's statistics."""
    retried = resilient.retry(initial_delay=0)(Flaky(1))
    retried()
    resilient.testing.reset()
    assert resilient.stats(retried) == resilient.RetryStats()


def test_stats_of_a_method_and_of_an_undecorated_function(fake_clock: FakeClock) -> None:
    """A bound method reads its function's stats; an undecorated one is a ConfigError."""
    flaky = Flaky(1)

    class Service:
        @resilient.retry(initial_delay=0)
        def call(self) -> str:
            return flaky()

    Service().call()
    assert resilient.stats(Service().call).retries == 1
    with pytest.raises(resilient.ConfigError):
        resilient.stats(print)


async def test_async_stats(fake_clock: FakeClock) -> None:
    """Async functions are counted the same way."""
    flaky = Flaky(1)

    @resilient.retry(initial_delay=2, jitter=0)
    async def call() -> str:
        return flaky()

    await call()
    assert (resilient.stats(call).retries, resilient.stats(call).idle_for) == (1, 2.0)


def test_a_poll_that_runs_out_is_an_event_holding_the_last_value(
    fake_clock: FakeClock, heard: list[object]
) -> None:
    """When on_result rejects the last value, RetryGaveUp's error is a RejectedResultError
    holding it, and the caller gets the value itself."""
    polled = resilient.retry(attempts=2, initial_delay=0, on_result=lambda v: v < 10)(lambda: 3)
    assert polled() == 3
    gave_up = heard[-1]
    assert isinstance(gave_up, resilient.RetryGaveUp)
    assert isinstance(gave_up.error, resilient.RejectedResultError)
    assert gave_up.error.result == 3
    assert resilient.stats(polled).gave_up == 1

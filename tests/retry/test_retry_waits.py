"""@retry waits and stops as users port them from tenacity: wait=, stop=, retry_after."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tenacity

import resilient
from resilient.testing import FakeClock


class ThrottledError(Exception):
    """A server's refusal carrying the seconds it asks the client to wait."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


def always_failing(error: Exception | None = None) -> tuple[list[int], Callable[[], None]]:
    """``(calls, fn)``: ``fn`` raises ``error`` (a ConnectionError by default) every time."""
    calls = [0]

    def fn() -> None:
        calls[0] += 1
        raise error or ConnectionError("down")

    return calls, fn


def test_tenacity_wait_exponential_is_not_capped_by_our_default_max_delay(
    fake_clock: FakeClock,
) -> None:
    """wait_exponential() with a plain on= gives tenacity's 1, 2, ..., 32, 64 s, not 30 s."""
    calls, fn = always_failing()
    decorated = resilient.retry(on=ConnectionError, attempts=8, wait=tenacity.wait_exponential())(
        fn
    )
    with pytest.raises(ConnectionError):
        decorated()
    assert fake_clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert calls[0] == 8


def test_an_explicit_max_delay_caps_a_tenacity_wait(fake_clock: FakeClock) -> None:
    """wait= together with max_delay= is capped at that max_delay."""
    _, fn = always_failing()
    decorated = resilient.retry(attempts=6, max_delay=5, wait=tenacity.wait_exponential())(fn)
    with pytest.raises(ConnectionError):
        decorated()
    assert fake_clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_preset_max_delay_does_not_cap_a_tenacity_wait(fake_clock: FakeClock) -> None:
    """A preset's max_delay belongs to its own schedule: wait= is used as given."""
    _, fn = always_failing()
    decorated = resilient.retry("quick", attempts=3, wait=tenacity.wait_fixed(10))(fn)
    with pytest.raises(ConnectionError):
        decorated()
    assert fake_clock.sleeps == [10.0, 10.0]


def test_retry_after_beyond_max_delay_is_honoured(fake_clock: FakeClock) -> None:
    """An error's retry_after=120 waits 120 s under the standard preset (max_delay 30 s)."""
    calls, fn = always_failing(ThrottledError(120))
    with pytest.raises(ThrottledError):
        resilient.retry(attempts=2)(fn)()
    assert fake_clock.sleeps == [120.0]
    assert calls[0] == 2


def test_retry_after_beyond_max_retry_after_ends_the_retries(fake_clock: FakeClock) -> None:
    """A retry_after longer than max_retry_after is not waited: the error comes at once."""
    calls, fn = always_failing(ThrottledError(3600))
    with pytest.raises(ThrottledError) as caught:
        resilient.retry(attempts=5, max_retry_after=600)(fn)()
    assert fake_clock.sleeps == []
    assert calls[0] == 1
    (note,) = caught.value.__notes__
    assert "3.6e+03s wait" in note
    assert "max_retry_after=600s" in note


@pytest.mark.parametrize(
    "retry_after", [10**400, float("inf"), 2e9], ids=["int-beyond-float", "inf", "2e9"]
)
def test_an_endless_retry_after_keeps_the_callers_error(
    fake_clock: FakeClock, retry_after: float
) -> None:
    """A retry_after too large for a float or a clock ends the retries with the call's error."""
    error = ThrottledError(0)
    error.retry_after = retry_after
    calls, fn = always_failing(error)
    with pytest.raises(ThrottledError) as caught:
        resilient.retry(attempts=3)(fn)()
    assert caught.value is error
    assert calls[0] == 1
    assert "max_retry_after=300s" in caught.value.__notes__[0]


def test_retry_after_up_to_max_retry_after_is_waited_in_full(fake_clock: FakeClock) -> None:
    """A retry_after equal to max_retry_after is waited exactly."""
    _, fn = always_failing(ThrottledError(600))
    with pytest.raises(ThrottledError):
        resilient.retry(attempts=2, max_retry_after=600)(fn)()
    assert fake_clock.sleeps == [600.0]


def test_retry_after_never_waits_past_the_deadline(fake_clock: FakeClock) -> None:
    """Inside a 60 s timeout, a 120 s retry_after is not started."""
    calls, fn = always_failing(ThrottledError(120))
    decorated = resilient.timeout(60)(resilient.retry(attempts=3)(fn))
    with pytest.raises(ThrottledError) as caught:
        decorated()
    assert fake_clock.sleeps == []
    assert calls[0] == 1
    assert "deadline" in caught.value.__notes__[0]


def test_default_max_retry_after_is_documented_value() -> None:
    """retry_after is honoured up to 300 s by default."""
    assert resilient.RetryConfig().max_retry_after == 300.0
    assert resilient.retry().layer.describe()["max_retry_after"] == 300.0


def test_stop_after_delay_counts_from_the_start_of_the_first_attempt(fake_clock: FakeClock) -> None:
    """A 30 s first attempt uses up 30 s of stop_after_delay(60), as in tenacity."""
    calls = [0]

    def slow_then_fast() -> None:
        calls[0] += 1
        if calls[0] == 1:
            fake_clock.advance(30)
        raise ConnectionError

    decorated = resilient.retry(stop=tenacity.stop_after_delay(60), wait=tenacity.wait_fixed(10))(
        slow_then_fast
    )
    with pytest.raises(ConnectionError):
        decorated()
    # failures at 30, 40, 50, 60 s: the one at 60 s is past the limit
    assert calls[0] == 4
    assert fake_clock.monotonic() == 60.0


async def test_async_stop_after_delay_counts_from_the_start_of_the_first_attempt(
    fake_clock: FakeClock,
) -> None:
    """The async loop also counts stop_after_delay from the first attempt's start."""
    calls = [0]

    async def slow_then_fast() -> None:
        calls[0] += 1
        if calls[0] == 1:
            fake_clock.advance(30)
        raise ConnectionError

    decorated = resilient.retry(stop=tenacity.stop_after_delay(60), wait=tenacity.wait_fixed(10))(
        slow_then_fast
    )
    with pytest.raises(ConnectionError):
        await decorated()
    assert calls[0] == 4
    assert fake_clock.monotonic() == 60.0


@pytest.mark.skipif(
    not hasattr(tenacity, "stop_before_delay"), reason="tenacity < 8.3 has no stop_before_delay"
)
def test_stop_before_delay_stops_when_the_next_wait_would_cross_the_limit(
    fake_clock: FakeClock,
) -> None:
    """stop_before_delay(60) with 10 s waits never sleeps past 60 s from the start."""
    calls, fn = always_failing()
    decorated = resilient.retry(
        stop=tenacity.stop_before_delay(60),  # type: ignore[attr-defined,unused-ignore]
        wait=tenacity.wait_fixed(10),
    )(fn)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    # failures at 0, 10, ..., 50 s; at 50 s the next 10 s wait would reach the limit
    assert fake_clock.sleeps == [10.0] * 5
    assert calls[0] == 6
    assert "stop strategy" in caught.value.__notes__[0]


def test_a_stop_strategy_sees_the_upcoming_wait(fake_clock: FakeClock) -> None:
    """A stop callable reads the wait about to happen in upcoming_sleep, as in tenacity."""
    seen: list[float] = []

    def stop(state: tenacity.RetryCallState) -> bool:
        seen.append(state.upcoming_sleep)
        return len(seen) >= 3

    _, fn = always_failing()
    with pytest.raises(ConnectionError):
        resilient.retry(stop=stop, wait=tenacity.wait_incrementing(start=1, increment=2))(fn)()
    assert seen == [1.0, 3.0, 5.0]
    assert fake_clock.sleeps == [1.0, 3.0]


def test_huge_delays_are_refused_at_decoration() -> None:
    """initial_delay=1e308, max_delay=1e308 is a ConfigError naming the 1e9 s maximum."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.retry(initial_delay=1e308, max_delay=1e308)
    assert caught.value.parameter == "initial_delay"
    assert "1e+09" in caught.value.allowed


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"max_delay": 1e10}, "max_delay"),
        ({"initial_delay": 10**400}, "initial_delay"),
        ({"max_retry_after": -1}, "max_retry_after"),
        ({"max_retry_after": float("nan")}, "max_retry_after"),
        ({"max_retry_after": float("inf")}, "max_retry_after"),
        ({"max_retry_after": 1e12}, "max_retry_after"),
        ({"max_retry_after": "60"}, "max_retry_after"),
    ],
)
def test_out_of_range_durations_fail_at_decoration(
    kwargs: dict[str, object], parameter: str
) -> None:
    """Durations no clock can sleep, and bad max_retry_after values, fail at decoration."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.retry(**kwargs)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_the_largest_allowed_delays_keep_the_callers_error(fake_clock: FakeClock) -> None:
    """At the 1e9 s maximum with a huge multiplier the schedule stays finite and capped."""
    _, fn = always_failing()
    decorated = resilient.retry(
        initial_delay=1e9, max_delay=1e9, multiplier=1e308, jitter=1, attempts=4
    )(fn)
    with pytest.raises(ConnectionError):
        decorated()
    assert len(fake_clock.sleeps) == 3
    assert all(0 <= delay <= 1e9 for delay in fake_clock.sleeps)


def test_a_wait_strategy_asking_for_an_impossible_wait_gives_up_with_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """A wait= that grows past what a clock can sleep ends the retries with the call's error."""
    calls, fn = always_failing()
    decorated = resilient.retry(attempts=100, wait=tenacity.wait_exponential(multiplier=1e8))(fn)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert fake_clock.sleeps == [1e8, 2e8, 4e8, 8e8]
    assert calls[0] == 5
    assert "impossible" in caught.value.__notes__[0]


async def test_async_tenacity_wait_with_plain_on(fake_clock: FakeClock) -> None:
    """The async loop also feeds attempt numbers to a tenacity wait behind a plain on=."""
    calls = [0]

    async def fn() -> None:
        calls[0] += 1
        raise ConnectionError

    decorated = resilient.retry(on=ConnectionError, attempts=7, wait=tenacity.wait_exponential())(
        fn
    )
    with pytest.raises(ConnectionError):
        await decorated()
    assert fake_clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def test_a_negative_wait_from_a_strategy_means_no_wait(fake_clock: FakeClock) -> None:
    """A wait= callable returning a negative number retries at once, without sleeping."""
    calls, fn = always_failing()
    with pytest.raises(ConnectionError):
        resilient.retry(attempts=3, wait=lambda state: -5.0)(fn)()
    assert fake_clock.sleeps == []
    assert calls[0] == 3


def test_a_nan_wait_from_a_strategy_gives_up_with_the_callers_error(fake_clock: FakeClock) -> None:
    """A wait= callable returning NaN ends the retries; the caller gets its own error."""
    calls, fn = always_failing()
    with pytest.raises(ConnectionError) as caught:
        resilient.retry(attempts=3, wait=lambda state: float("nan"))(fn)()
    assert fake_clock.sleeps == []
    assert calls[0] == 1
    assert "impossible nan" in caught.value.__notes__[0]


def test_describe_shows_what_replaces_the_schedule_and_the_cap() -> None:
    """describe() shows on=, on_retry=, stop= and wait= when given, and no attempt cap
    when a stop strategy alone ends the retries (rather than the unused default of 3)."""
    stop, wait = tenacity.stop_after_delay(10), tenacity.wait_fixed(2)
    described = resilient.retry(stop=stop, wait=wait, on=ConnectionError, on_retry=print)
    shown = described.layer.describe()
    assert shown["attempts"] is None
    assert (shown["stop"], shown["wait"]) == (stop, wait)
    assert (shown["on"], shown["on_retry"]) == (ConnectionError, print)
    capped = resilient.retry(stop=stop, attempts=4).layer.describe()
    assert capped["attempts"] == 4
    assert "on" not in resilient.retry().layer.describe()

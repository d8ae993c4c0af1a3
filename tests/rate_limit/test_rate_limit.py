"""``@rate_limit`` in one process: waiting, refusing, deadlines, sharing by name."""

from __future__ import annotations

import asyncio
import copy
import pickle

import pytest
from loop_clock import LoopClock

import resilient as rs
from resilient.testing import FakeClock


def test_wait_mode_spaces_calls_after_the_burst(fake_clock: FakeClock) -> None:
    """After ``burst`` calls at once, each call waits (on the clock) for its own token."""

    @rs.rate_limit(2, burst=2)
    def stamp() -> float:
        return fake_clock.monotonic()

    assert [stamp() for _ in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.5]


def test_reject_mode_raises_with_retry_after(fake_clock: FakeClock) -> None:
    """Without a token, ``mode="reject"`` raises at once with the seconds until one is free."""

    @rs.rate_limit(4, burst=1, mode="reject", name="api")
    def call() -> str:
        return "ok"

    assert call() == "ok"
    with pytest.raises(rs.RateLimitedError) as caught:
        call()
    assert (caught.value.name, caught.value.retry_after) == ("api", 0.25)
    assert isinstance(caught.value, rs.ResilienceError)
    assert "api" in str(caught.value)
    fake_clock.advance(0.25)
    assert call() == "ok"


def test_per_spreads_the_rate_over_a_period(fake_clock: FakeClock) -> None:
    """``rate=60, per=60`` is one call a second once the burst is spent."""

    @rs.rate_limit(60, 60, burst=1)
    def stamp() -> float:
        return fake_clock.monotonic()

    assert [stamp() for _ in range(3)] == [0.0, 1.0, 2.0]


def test_a_wait_past_the_deadline_is_refused_at_once(fake_clock: FakeClock) -> None:
    """Under a timeout, a call whose token comes after the deadline is refused without
    waiting, and its token is not taken."""

    @rs.timeout(1.0)
    @rs.rate_limit(1, burst=1, name="slow")
    def call() -> float:
        return fake_clock.monotonic()

    assert call() == 0.0
    fake_clock.advance(0.5)  # the next token is 0.5 s away: fits in 1 s
    assert call() == 1.0
    with pytest.raises(rs.RateLimitedError) as caught:
        call()  # the next one is 1 s away: it would end exactly at the deadline
    assert caught.value.retry_after == pytest.approx(1.0)
    assert fake_clock.monotonic() == 1.0


def test_one_name_is_one_bucket(fake_clock: FakeClock) -> None:
    """Two functions naming the same limit share its tokens."""
    shared = rs.rate_limit(1, burst=1, mode="reject", name="db")

    @shared
    def read() -> int:
        return 1

    @rs.rate_limit(1, burst=1, mode="reject", name="db")
    def write() -> int:
        return 2

    assert read() == 1
    with pytest.raises(rs.RateLimitedError):
        write()


def test_unnamed_limits_are_one_per_function(fake_clock: FakeClock) -> None:
    """Without a name, each decorated function has a bucket of its own."""
    limit = rs.rate_limit(1, burst=1, mode="reject")

    @limit
    def first() -> int:
        return 1

    @limit
    def second() -> int:
        return 2

    assert (first(), second()) == (1, 2)
    with pytest.raises(rs.RateLimitedError) as caught:
        first()
    assert caught.value.name.endswith("first")
    assert rs.describe(second)[0]["name"] == caught.value.name.replace("first", "second")


def test_a_name_claimed_with_other_settings_is_a_config_error() -> None:
    """A second decorator naming a limit with a different rate raises ``ConfigError``."""
    rs.rate_limit(10, name="quota")
    with pytest.raises(rs.ConfigError) as caught:
        rs.rate_limit(20, name="quota")
    assert caught.value.parameter == "name"


async def test_async_wait_mode_sleeps_on_virtual_time(fake_clock: FakeClock) -> None:
    """Coroutines wait for their token on the clock's ``asleep`` (virtual time here)."""

    @rs.rate_limit(10, burst=1)
    async def stamp() -> float:
        return fake_clock.monotonic()

    assert inspect_is_coroutine(stamp)
    times = [await stamp() for _ in range(3)]
    assert times == pytest.approx([0.0, 0.1, 0.2])


async def test_async_reject_mode(fake_clock: FakeClock) -> None:
    """Coroutines are refused with ``RateLimitedError`` in ``reject`` mode."""

    @rs.rate_limit(1, burst=1, mode="reject")
    async def call() -> int:
        return 1

    assert await call() == 1
    with pytest.raises(rs.RateLimitedError):
        await call()


async def test_a_cancelled_wait_gives_its_token_back(fake_clock: FakeClock) -> None:
    """A task cancelled while it waits for its token returns the token to the bucket."""

    @rs.rate_limit(1, burst=1, mode="wait", name="cancel")
    async def call() -> float:
        return fake_clock.monotonic()

    assert await call() == 0.0
    waiting = asyncio.ensure_future(call())
    await asyncio.sleep(0)  # it takes its token and starts waiting for it
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await call() == pytest.approx(1.0)  # the cancelled call's token came back


async def test_a_cancelled_wait_before_a_later_one_keeps_its_token_spent(
    fake_clock: FakeClock,
) -> None:
    """A task cancelled while a later task also waits does not give its token back: the
    next caller would otherwise share the later task's time and exceed the limit."""
    rs.configure(clock=LoopClock(fake_clock))
    starts: list[float] = []

    @rs.rate_limit(1, burst=1, name="cancel-early")
    async def call() -> None:
        starts.append(fake_clock.monotonic())

    await call()  # t=0: the burst
    first = asyncio.ensure_future(call())  # its token is at t=1
    second = asyncio.ensure_future(call())  # at t=2
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.gather(second, call())  # the third waits for t=3, not t=2
    assert starts == [0.0, 2.0, 3.0]


def test_retry_waits_the_retry_after_of_a_refusal(fake_clock: FakeClock) -> None:
    """``@retry`` around a refusing limit waits the error's ``retry_after``, then succeeds."""
    waits: list[float] = []

    @rs.retry(attempts=3, on_retry=lambda attempt, error, delay: waits.append(delay))
    @rs.rate_limit(2, burst=1, mode="reject")
    def call() -> float:
        return fake_clock.monotonic()

    assert call() == 0.0
    assert call() == 0.5
    assert waits == [0.5]


def test_instant_makes_waits_zero(fake_clock: FakeClock) -> None:
    """Under ``resilient.testing.instant()`` a call that would wait goes at once."""
    from resilient.testing import instant

    @rs.rate_limit(1, burst=1)
    def stamp() -> float:
        return fake_clock.monotonic()

    with instant():
        assert [stamp() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_disabled_passes_straight_through(fake_clock: FakeClock) -> None:
    """Under ``resilient.testing.disabled()`` the limit neither waits nor refuses."""
    from resilient.testing import disabled

    @rs.rate_limit(1, burst=1, mode="reject")
    def call() -> int:
        return 1

    with disabled():
        assert [call() for _ in range(3)] == [1, 1, 1]


def test_describe_shows_the_settings() -> None:
    """``describe()`` lists the rate-limit step with its settings."""

    @rs.rate_limit(5, 2, burst=3, mode="reject", name="desc")
    def call() -> None:
        return None

    (step,) = rs.describe(call)
    assert step == {
        "layer": "rate_limit",
        "name": "desc",
        "rate": 5,
        "per": 2.0,
        "burst": 3,
        "mode": "reject",
        "store": None,
    }


def test_the_error_pickles_and_copies() -> None:
    """A ``RateLimitedError`` survives pickling and copying with its name and retry_after."""
    error = rs.RateLimitedError("api", 1.5)
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert (type(again), again.name, again.retry_after, str(again)) == (
            rs.RateLimitedError,
            "api",
            1.5,
            str(error),
        )


def test_metrics_count_refusals_and_time_waits(
    fake_clock: FakeClock, sink: rs.metrics.MemorySink
) -> None:
    """``rate_limited_total`` counts refusals and ``rate_limit_wait_ms`` times waits, by name."""

    @rs.rate_limit(2, burst=1, name="m")
    def waits() -> None:
        return None

    @rs.rate_limit(2, burst=1, mode="reject", name="r")
    def refuses() -> None:
        return None

    waits()
    waits()
    refuses()
    with pytest.raises(rs.RateLimitedError):
        refuses()
    assert sink.counter("rate_limited_total", rate_limit="r") == 1
    assert sink.timings("rate_limit_wait_ms", rate_limit="m") == [500.0]


def test_listeners_hear_waits_and_refusals(fake_clock: FakeClock) -> None:
    """A listener gets one ``RateLimited`` event per wait and per refusal."""
    heard: list[object] = []
    rs.add_listener(heard.append)

    @rs.rate_limit(2, burst=1, mode="reject", name="ev")
    def call() -> None:
        return None

    call()
    with pytest.raises(rs.RateLimitedError):
        call()
    assert heard == [rs.RateLimited("ev", 0.5, True)]


def inspect_is_coroutine(fn: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)

"""Property tests of @retry's schedule and attempt accounting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient.testing import FakeClock, use_clock

configs = st.builds(
    resilient.RetryConfig,
    attempts=st.integers(1, 12),
    initial_delay=st.floats(0, 10, allow_nan=False),
    max_delay=st.floats(0, 60, allow_nan=False),
    multiplier=st.floats(1, 5, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(config=configs, failures=st.integers(0, 20))
def test_delays_follow_the_jittered_exponential_schedule(
    config: resilient.RetryConfig, failures: int
) -> None:
    """Each wait lies within ±jitter of the capped exponential step and never tops max_delay."""
    clock = FakeClock()
    calls = 0

    @resilient.retry(config)
    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ConnectionError

    with use_clock(clock):
        try:
            flaky()
        except ConnectionError:
            pass
    assert calls == min(failures + 1, config.attempts)
    assert len(clock.sleeps) <= config.attempts - 1
    for attempt, delay in enumerate(clock.sleeps, start=1):
        step = min(config.initial_delay * config.multiplier ** (attempt - 1), config.max_delay)
        low, high = step * (1 - config.jitter), min(step * (1 + config.jitter), config.max_delay)
        assert low - 1e-9 <= delay <= high + 1e-9
        assert delay <= config.max_delay


@settings(max_examples=100, deadline=None)
@given(attempts=st.integers(1, 30), failures=st.integers(0, 40))
def test_never_calls_more_than_attempts(attempts: int, failures: int) -> None:
    """The function runs at most ``attempts`` times, however often it fails."""
    calls = 0

    @resilient.retry(attempts=attempts, initial_delay=0)
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ValueError
        return "ok"

    try:
        assert flaky() == "ok"
        assert failures < attempts
    except ValueError:
        assert failures >= attempts
    assert calls == min(failures + 1, attempts)


hints = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),
    st.sampled_from([10**309, -(10**309), 2**63]),
    st.booleans(),
    st.text(max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(config=configs, retry_after=st.lists(hints, min_size=1, max_size=6))
def test_the_caller_always_gets_its_own_error(
    config: resilient.RetryConfig, retry_after: list[object]
) -> None:
    """Whatever retry_after an error carries, the caller gets that error, never another."""
    clock = FakeClock()
    raised: list[Exception] = []

    @resilient.retry(config)
    def failing() -> None:
        error = ConnectionError(len(raised))
        error.retry_after = retry_after[len(raised) % len(retry_after)]  # type: ignore[attr-defined]
        raised.append(error)
        raise error

    with use_clock(clock), pytest.raises(ConnectionError) as caught:
        failing()
    assert caught.value is raised[-1]
    assert 1 <= len(raised) <= config.attempts
    assert all(0 <= delay <= config.max_retry_after for delay in clock.sleeps)

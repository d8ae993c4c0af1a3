"""Property tests of @retry's schedule and attempt accounting."""

from __future__ import annotations

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

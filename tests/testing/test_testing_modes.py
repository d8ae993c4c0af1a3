"""resilient.testing's modes: instant retries and decorators switched off."""

from __future__ import annotations

import pytest

import resilient
from resilient._runtime import config as _config
from resilient.testing import FakeClock, disabled, instant


def test_instant_caps_attempts_and_skips_waits(fake_clock: FakeClock) -> None:
    """Under instant(), a 5-attempt retry makes 2 attempts and never sleeps."""
    calls = 0

    @resilient.retry(attempts=5, initial_delay=10)
    def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    with instant(attempts=2), pytest.raises(ConnectionError):
        failing()
    assert calls == 2
    assert fake_clock.sleeps == []
    calls = 0
    with pytest.raises(ConnectionError):
        failing()
    assert calls == 5  # back to normal after the block


def test_disabled_calls_the_function_directly(fake_clock: FakeClock) -> None:
    """Under disabled(), no retry, no timeout: the bare function runs once."""
    calls = 0

    @resilient.retry(attempts=3, initial_delay=0)
    @resilient.timeout(1)
    def slow_and_failing() -> None:
        nonlocal calls
        calls += 1
        fake_clock.sleep(5)
        raise ConnectionError

    with disabled(), pytest.raises(ConnectionError) as caught:
        slow_and_failing()
    assert calls == 1
    assert not getattr(caught.value, "__notes__", None)
    with pytest.raises(resilient.TimeoutExceededError):
        slow_and_failing()


async def test_disabled_works_for_coroutines(fake_clock: FakeClock) -> None:
    """The async form bypasses the stack too."""

    @resilient.timeout(1)
    async def slow() -> str:
        await fake_clock.asleep(5)
        return "done"

    with disabled():
        assert await slow() == "done"


def test_overlapping_disabled_blocks_bypass_until_the_last_one_ends() -> None:
    """Two disabled() blocks that overlap (as two tasks' would) bypass until the later ends."""
    calls = 0

    @resilient.retry(attempts=3)
    def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    first, second = disabled(), disabled()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    with pytest.raises(ConnectionError):
        failing()
    assert calls == 1  # still bypassed: the second block is open
    second.__exit__(None, None, None)
    calls = 0
    with instant(attempts=3), pytest.raises(ConnectionError):
        failing()
    assert calls == 3  # both ended: the retry runs again


def test_overlapping_instant_blocks_keep_the_open_ones_cap() -> None:
    """Two instant() blocks that overlap (as two tasks' would) and end out of order: the cap
    is the open block's until it ends too, and then retries wait again."""
    first, second = instant(attempts=2), instant(attempts=5)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert _config.state.instant == 5  # the second block is still open
    second.__exit__(None, None, None)
    assert _config.state.instant is None

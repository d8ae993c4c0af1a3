"""``CircuitBreaker.mode`` is the mode a call meets, ``snapshot()`` the whole state;
``state`` keeps its old meaning one release, with a warning."""

from __future__ import annotations

import pytest
from strategies import BoomError

from resilient import BreakerConfig, BreakerMode, CircuitBreaker
from resilient.testing import FakeClock


def test_mode_is_the_breaker_mode_and_snapshot_the_whole_state(fake_clock: FakeClock) -> None:
    """``mode`` is what a call meets now (half-open once the wait is over); ``snapshot()``
    is the stored ``BreakerState``."""
    b = CircuitBreaker("modes", BreakerConfig(failure_threshold=1, reset_timeout=10))
    assert b.mode is BreakerMode.CLOSED
    with pytest.raises(BoomError):
        b.call(_fail)
    assert b.mode is BreakerMode.OPEN
    assert b.snapshot().mode is BreakerMode.OPEN
    assert b.snapshot().failures == 1
    fake_clock.advance(10)
    assert b.mode is BreakerMode.HALF_OPEN
    assert b.snapshot().mode is BreakerMode.OPEN  # stored: moves on the next call


def test_state_still_gives_the_mode_with_a_warning(fake_clock: FakeClock) -> None:
    """``CircuitBreaker.state`` keeps its old meaning (the mode) for one release, warning
    that ``mode`` and ``snapshot()`` replace it."""
    b = CircuitBreaker("old-state", BreakerConfig(failure_threshold=1))
    with pytest.raises(BoomError):
        b.call(_fail)
    with pytest.warns(DeprecationWarning, match=r"\.mode .*\.snapshot\(\)") as record:
        assert b.state is BreakerMode.OPEN
    assert record[0].filename == __file__


def test_repr_and_opened_read_no_deprecated_name(fake_clock: FakeClock) -> None:
    """``repr`` and ``opened`` read the mode without a warning (warnings are errors here)."""
    breaker = CircuitBreaker("quiet", BreakerConfig(failure_threshold=1))
    with pytest.raises(BoomError):
        breaker.call(_fail)
    assert "OPEN" in repr(breaker)
    assert breaker.opened


def _fail() -> None:
    raise BoomError("down")

"""The shared deadline: what ``remaining()`` reports, nesting, and the virtual-clock signal."""

from __future__ import annotations

import pickle

import pytest

import resilient
from resilient._runtime import deadline as _deadline
from resilient.testing import FakeClock


def test_remaining_counts_down_to_the_deadline(fake_clock: FakeClock) -> None:
    """remaining() is the seconds left on the configured clock until the deadline."""
    token = _deadline.enter(fake_clock.monotonic() + 10)
    try:
        fake_clock.advance(4)
        assert resilient.remaining() == pytest.approx(6)
    finally:
        _deadline.leave(token)
    assert resilient.remaining() is None


@pytest.mark.parametrize("past", [0.0, 0.5, 30.0])
def test_remaining_after_the_deadline_is_zero(fake_clock: FakeClock, past: float) -> None:
    """remaining() is exactly 0.0 at and after the deadline, never negative or positive."""
    token = _deadline.enter(fake_clock.monotonic() + 1)
    try:
        fake_clock.advance(1 + past)
        assert resilient.remaining() == 0.0
    finally:
        _deadline.leave(token)


def test_a_nested_deadline_keeps_the_earlier_one(fake_clock: FakeClock) -> None:
    """An inner deadline later than the outer one does not extend it; an earlier one wins."""
    outer = _deadline.enter(fake_clock.monotonic() + 5)
    try:
        inner = _deadline.enter(fake_clock.monotonic() + 50)
        assert resilient.remaining() == pytest.approx(5)
        _deadline.leave(inner)
        inner = _deadline.enter(fake_clock.monotonic() + 2)
        assert resilient.remaining() == pytest.approx(2)
        _deadline.leave(inner)
        assert resilient.remaining() == pytest.approx(5)
    finally:
        _deadline.leave(outer)


def test_deadline_reached_carries_its_deadline_through_pickling() -> None:
    """DeadlineReached keeps ``when`` in its args, so it pickles and prints with the deadline."""
    reached = _deadline.DeadlineReached(12.5)
    assert reached.when == 12.5
    assert reached.args == (12.5,)
    assert pickle.loads(pickle.dumps(reached)).when == 12.5
    assert not isinstance(reached, Exception)  # user code's `except Exception` cannot eat it

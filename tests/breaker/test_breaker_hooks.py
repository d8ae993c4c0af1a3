"""A breaker's ``record=``, ``ignore=`` and ``failure_result=`` predicates that raise.

The caller always gets the call's own error (with a note) or its result; the predicate's
failure is logged once per window and counted as ``hook_errors_total``; the breaker
judges as documented on ``BreakerConfig``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, breaker
from resilient.metrics import MemorySink
from resilient.telemetry import window
from resilient.testing import FakeClock


def broken_predicate(value: object) -> bool:
    raise LookupError("predicate bug")


def refused() -> None:
    raise ConnectionError("refused")


async def arefused() -> None:
    raise ConnectionError("refused")


def _notes(error: BaseException) -> list[str]:
    return list(getattr(error, "__notes__", []))


def test_a_raising_record_predicate_keeps_the_callers_error_and_counts_a_failure(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """record= raising: the ConnectionError reaches the caller with a note, and counts."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    @breaker("rec", BreakerConfig(failure_threshold=3, record=broken_predicate))
    def call() -> None:
        refused()

    with caplog.at_level(logging.WARNING, logger="resilient"):
        for _ in range(3):
            with pytest.raises(ConnectionError, match="refused") as caught:
                call()
            notes = _notes(caught.value)
            assert len(notes) == 1
            assert "record= predicate" in notes[0]
            assert "LookupError: predicate bug" in notes[0]
    assert resilient.get_breaker("rec").mode is BreakerMode.OPEN  # counted as failures
    assert sink.counter("hook_errors_total", hook="record= predicate") == 3
    assert sink.series()["hook_errors_total"] == [{"name": "rec", "hook": "record= predicate"}]
    assert sum("predicate bug" in r.getMessage() for r in caplog.records) == 1


def test_a_raising_ignore_predicate_ignores_nothing(fake_clock: FakeClock) -> None:
    """ignore= raising: the error is not ignored, so the default record= counts it."""
    b = CircuitBreaker("ign", BreakerConfig(failure_threshold=2, ignore=broken_predicate))
    for _ in range(2):
        with pytest.raises(ConnectionError) as caught:
            b.call(refused)
        assert any("ignore= predicate" in note for note in _notes(caught.value))
    assert b.mode is BreakerMode.OPEN
    assert window.totals["hook_errors_total"] == 2  # metrics off: the window counts


def test_a_raising_failure_result_predicate_returns_the_result_as_a_success(
    fake_clock: FakeClock,
) -> None:
    """failure_result= raising: the caller gets the result, which counts as a success."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    config = BreakerConfig(failure_threshold=1, failure_result=broken_predicate)

    @breaker("res", config)
    def answer() -> int:
        return 42

    b = CircuitBreaker("res-direct", config)
    assert [answer() for _ in range(3)] == [42, 42, 42]
    assert b.call(lambda: 7) == 7
    assert resilient.get_breaker("res").mode is BreakerMode.CLOSED
    assert b.mode is BreakerMode.CLOSED
    assert sink.counter("hook_errors_total", hook="failure_result= predicate") == 4


def test_a_raising_failure_result_predicate_in_a_rate_window_counts_a_success(
    fake_clock: FakeClock,
) -> None:
    """On the windowed path, a result whose predicate raised is one success in the window."""
    config = BreakerConfig(
        failure_rate=0.5, window_size=4, minimum_calls=2, failure_result=broken_predicate
    )

    @breaker("win-res", config)
    def answer() -> int:
        return 1

    assert answer() == 1
    assert resilient.get_breaker("win-res").window() == (1, 0, 0)


async def test_async_predicates_that_raise_keep_the_callers_error(fake_clock: FakeClock) -> None:
    """Async twins: record= raising keeps the error and counts; failure_result keeps results."""

    @breaker("arec", BreakerConfig(failure_threshold=2, record=broken_predicate))
    async def call() -> None:
        await arefused()

    @breaker("ares", BreakerConfig(failure_threshold=1, failure_result=broken_predicate))
    async def answer() -> int:
        await asyncio.sleep(0)
        return 5

    for _ in range(2):
        with pytest.raises(ConnectionError) as caught:
            await call()
        assert any("record= predicate" in note for note in _notes(caught.value))
    assert resilient.get_breaker("arec").mode is BreakerMode.OPEN
    assert await answer() == 5
    b = CircuitBreaker("acall", BreakerConfig(failure_threshold=1, ignore=broken_predicate))
    with pytest.raises(ConnectionError):
        await b.acall(arefused)
    assert b.mode is BreakerMode.OPEN


def test_one_shared_error_collects_one_note(fake_clock: FakeClock) -> None:
    """The same error instance raised many times carries the predicate's note once."""
    shared = ConnectionError("shared")
    b = CircuitBreaker("shared", BreakerConfig(failure_threshold=100, record=broken_predicate))

    def raise_shared() -> None:
        raise shared

    for _ in range(50):
        with pytest.raises(ConnectionError):
            b.call(raise_shared)
    assert len(_notes(shared)) == 1


def test_a_predicate_raising_keyboard_interrupt_is_not_swallowed(fake_clock: FakeClock) -> None:
    """Only Exception subclasses are contained: an interrupt from a predicate propagates."""

    def interrupted(error: BaseException) -> bool:
        raise KeyboardInterrupt

    b = CircuitBreaker("kbi", BreakerConfig(record=interrupted))
    with pytest.raises(KeyboardInterrupt):
        b.call(refused)

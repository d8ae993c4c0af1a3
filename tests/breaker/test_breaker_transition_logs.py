"""Breaker transitions and degradation-level changes are logged one line each (WARNING
when calls start being refused or the app degrades, INFO on recovery), and a flapping
breaker cannot flood the log."""

from __future__ import annotations

import logging

import pytest

import resilient
from resilient import BreakerConfig, DegradationLevel, DegradationService
from resilient._breaker.registry import CircuitBreakerRegistry
from resilient._runtime.logs import transitions
from resilient.testing import FakeClock

CONFIG = BreakerConfig(failure_threshold=1, reset_timeout=10)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "resilient" and "circuit breaker" in r.getMessage()
    ]


def fail_once(name: str) -> None:
    @resilient.breaker(name, CONFIG)
    def call() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        call()


def test_a_trip_and_its_recovery_are_three_lines(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    """Opening is a WARNING; half-open and closed, the recovery, are INFO."""

    @resilient.breaker("grades", CONFIG)
    def call(fail: bool) -> None:
        if fail:
            raise ConnectionError("down")

    with caplog.at_level(logging.INFO, logger="resilient"):
        with pytest.raises(ConnectionError):
            call(True)
        fake_clock.advance(10)
        call(False)
    assert lines(caplog) == [
        (
            logging.WARNING,
            "resilient: circuit breaker 'grades' opened: calls are refused until it probes "
            "(was closed)",
        ),
        (
            logging.INFO,
            "resilient: circuit breaker 'grades' half-open: probe calls go through (was open)",
        ),
        (
            logging.INFO,
            "resilient: circuit breaker 'grades' closed: calls go through again (was half_open)",
        ),
    ]


def test_forcing_open_by_hand_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An operator forcing a breaker open is logged as a WARNING too."""
    breaker = CircuitBreakerRegistry.instance.get_or_create("ledger")
    with caplog.at_level(logging.INFO, logger="resilient"):
        breaker.force_open()
        breaker.reset()
    assert [level for level, _ in lines(caplog)] == [logging.WARNING, logging.INFO]
    assert "forced open" in lines(caplog)[0][1]


def test_a_flapping_breaker_is_folded_into_one_line_per_window(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    """Twenty trips in a minute log the first changes, then one line saying how many more
    there were once the window ends; other breakers keep their own lines."""
    breaker = CircuitBreakerRegistry.instance.get_or_create("flappy")
    with caplog.at_level(logging.INFO, logger="resilient"):
        for _ in range(20):
            breaker.force_open()
            breaker.reset()
        fail_once("steady")
        fake_clock.advance(transitions.window)
        transitions.tick()
    flappy = [text for _, text in lines(caplog) if "'flappy'" in text]
    assert len(flappy) == transitions.burst + 1
    assert f"{40 - transitions.burst} more changes in the last 60s" in flappy[-1]
    assert any("'steady' opened" in text for _, text in lines(caplog))


def test_level_changes_are_logged_with_their_ui_impact(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app degrading is a WARNING naming the level and its UI impact; recovering is
    INFO."""
    service = DegradationService.instance
    with caplog.at_level(logging.INFO, logger="resilient"):
        service.disable("ai_assistant", "maintenance")
        service.enable("ai_assistant")
    found = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith("resilient: degradation level")
    ]
    assert found == [
        (
            logging.WARNING,
            "resilient: degradation level none -> moderate: AI unavailable (UI: Warning banner)",
        ),
        (
            logging.INFO,
            "resilient: degradation level moderate -> none: Full functionality (UI: Normal)",
        ),
    ]
    assert service.level is DegradationLevel.none

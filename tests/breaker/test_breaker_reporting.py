"""What breakers tell the world: trips announced on every path, listeners that leave."""

from __future__ import annotations

import pytest

import resilient
from resilient import (
    BreakerConfig,
    BreakerEvent,
    BreakerMode,
    BreakerOpened,
    CallRecorded,
    CircuitBreaker,
    breaker,
)
from resilient.metrics import MemorySink
from resilient.telemetry import generate_report, window
from resilient.testing import FakeClock

BAD_RESULT = BreakerConfig(
    failure_rate=0.5, window_size=4, minimum_calls=2, failure_result=lambda r: r is None
)


def test_a_sync_windowed_trip_by_a_returned_result_is_announced(fake_clock: FakeClock) -> None:
    """Results judged failures trip a rate breaker: opens counter, gauge and report agree."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    @breaker("results", BAD_RESULT)
    def answer() -> None:
        return None

    assert sink.gauge_value("open_circuits", breaker="results") == 0
    answer()
    answer()
    assert resilient.get_breaker("results").mode is BreakerMode.OPEN
    assert sink.counter("circuit_breaker_opens_total", breaker="results") == 1
    assert sink.gauge_value("open_circuits", breaker="results") == 1
    assert generate_report()["open_circuits"] == ["results"]


async def test_an_async_windowed_trip_by_a_returned_result_is_announced(
    fake_clock: FakeClock,
) -> None:
    """The async twin announces the same trip."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    @breaker("aresults", BAD_RESULT)
    async def answer() -> None:
        return None

    await answer()
    await answer()
    assert sink.counter("circuit_breaker_opens_total", breaker="aresults") == 1
    assert sink.gauge_value("open_circuits", breaker="aresults") == 1


def test_a_windowed_trip_with_metrics_off_sets_the_windows_gauge(fake_clock: FakeClock) -> None:
    """With no sink, the telemetry window's gauge follows the trip (for a sink added later)."""

    @breaker("quiet-results", BAD_RESULT)
    def answer() -> None:
        return None

    answer()
    answer()
    assert window.gauges["open_circuits", (("breaker", "quiet-results"),)] == 1
    sink = MemorySink()
    resilient.configure(metrics=sink)
    assert sink.gauge_value("open_circuits", breaker="quiet-results") == 1


def test_a_removed_breaker_listener_hears_nothing_more(fake_clock: FakeClock) -> None:
    """remove_listener() stops the calls, and a breaker with no listener builds no events."""
    heard: list[BreakerEvent] = []
    b = CircuitBreaker("listened", BreakerConfig(failure_threshold=1))
    b.add_listener(heard.append)
    assert b.call(lambda: 1) == 1
    assert [type(e) for e in heard] == [CallRecorded]
    b.remove_listener(heard.append)
    assert not b._loud
    assert b.call(lambda: 2) == 2
    with pytest.raises(ConnectionError):
        b.call(_refuse)
    assert b.mode is BreakerMode.OPEN
    assert [type(e) for e in heard] == [CallRecorded]
    b.remove_listener(heard.append)  # not registered any more: no error


def test_removing_one_of_two_listeners_keeps_the_other(fake_clock: FakeClock) -> None:
    """Only the listener removed stops hearing; the breaker still announces to the rest."""
    first: list[BreakerEvent] = []
    second: list[BreakerEvent] = []
    b = CircuitBreaker("two-listeners", BreakerConfig(failure_threshold=1))
    b.add_listener(first.append)
    b.add_listener(second.append)
    b.remove_listener(first.append)
    with pytest.raises(ConnectionError):
        b.call(_refuse)
    assert first == []
    assert [type(e) for e in second] == [CallRecorded, BreakerOpened]


def test_a_removed_global_listener_hears_nothing_more(fake_clock: FakeClock) -> None:
    """resilient.remove_listener() stops a global listener; breakers go quiet again."""
    heard: list[BreakerEvent] = []
    b = CircuitBreaker("global-listened")
    resilient.add_listener(heard.append)
    assert b._loud
    b.call(lambda: 1)
    resilient.remove_listener(heard.append)
    assert not b._loud
    b.call(lambda: 1)
    b.force_open()
    assert len(heard) == 1


def _refuse() -> None:
    raise ConnectionError

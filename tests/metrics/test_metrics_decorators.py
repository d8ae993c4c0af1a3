"""What each decorator reports through the configured sink."""

from __future__ import annotations

import asyncio

import pytest
import tenacity

import resilient
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def test_retry_counts_retries_not_first_attempts(fake_clock: FakeClock, sink: MemorySink) -> None:
    """Two failures then a success: two retries, one latency sample for the whole call."""
    calls = 0

    @resilient.retry(initial_delay=0)
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError
        return "ok"

    flaky()
    name = f"{__name__}.{flaky.__qualname__}"
    assert sink.counter("retry_attempts_total", policy=name) == 2
    assert len(sink.timings("request_latency_ms", policy=name)) == 1


def test_success_records_latency_only(fake_clock: FakeClock, sink: MemorySink) -> None:
    """A clean call makes one timing and no counter."""

    @resilient.retry()
    def fine() -> int:
        fake_clock.advance(0.25)
        return 1

    fine()
    assert sink.timings("request_latency_ms") == [250.0]
    assert sink.series().keys() == {"request_latency_ms"}


def test_stacked_decorators_record_latency_once(fake_clock: FakeClock, sink: MemorySink) -> None:
    """One call through three layers is one latency sample."""

    @resilient.retry()
    @resilient.timeout(5)
    @resilient.retry()
    def fine() -> int:
        return 1

    fine()
    assert len(sink.timings("request_latency_ms")) == 1


def test_timeouts_are_counted(fake_clock: FakeClock, sink: MemorySink) -> None:
    """Every expired budget adds to timeouts_total."""

    @resilient.timeout(1)
    def stuck() -> None:
        fake_clock.sleep(5)

    for _ in range(3):
        with pytest.raises(resilient.TimeoutExceededError):
            stuck()
    assert sink.counter("timeouts_total") == 3


async def test_async_calls_report_too(fake_clock: FakeClock, sink: MemorySink) -> None:
    """The async forms report the same metrics."""

    @resilient.retry(initial_delay=0, attempts=2)
    @resilient.timeout(1)
    async def stuck() -> None:
        await fake_clock.asleep(5)

    with pytest.raises(resilient.TimeoutExceededError):
        await stuck()
    assert sink.counter("timeouts_total") == 2
    assert sink.counter("retry_attempts_total") == 1
    assert sink.timings("request_latency_ms") == [2000.0]


def test_per_decorator_sink_overrides_the_configured_one(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """metrics= on a decorator sends that function's metrics elsewhere."""
    own = MemorySink()

    @resilient.retry(initial_delay=0, attempts=2, metrics=own)
    def flaky(state: list[int] = []) -> None:  # noqa: B006 - call counter
        state.append(1)
        if len(state) == 1:
            raise ValueError

    flaky()
    assert own.counter("retry_attempts_total") == 1
    assert len(own.timings("request_latency_ms")) == 1
    assert sink.counter("retry_attempts_total") == 0


def test_metrics_off_records_nothing(fake_clock: FakeClock) -> None:
    """With metrics=None (the default) decorated calls report nothing at all."""
    resilient.configure(metrics=None)

    @resilient.retry(initial_delay=0, attempts=2)
    def flaky(state: list[int] = []) -> None:  # noqa: B006 - call counter
        state.append(1)
        if len(state) == 1:
            raise ValueError

    flaky()
    assert resilient.telemetry.window.latencies == type(resilient.telemetry.window.latencies)()
    assert resilient.telemetry.generate_report()["counters"] == {}


def test_gauges_report_their_value_when_a_sink_is_installed(fake_clock: FakeClock) -> None:
    """A gauge set before a sink was configured is sent to it at once."""
    first = MemorySink()
    resilient.configure(metrics=first)
    resilient.telemetry.window.gauge("pending_sync_items", 4, ())
    second = MemorySink()
    resilient.configure(metrics=second)
    assert second.gauge_value("pending_sync_items") == 4


def test_breaker_reports_trips_rejections_and_the_gauge(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """Trips count circuit_breaker_opens_total, rejections calls_rejected_total."""

    @resilient.breaker("metrics-db", resilient.BreakerConfig(failure_threshold=2))
    def query() -> None:
        raise ConnectionError

    assert sink.gauge_value("open_circuits", breaker="metrics-db") == 0
    for _ in range(2):
        with pytest.raises(ConnectionError):
            query()
    for _ in range(3):
        with pytest.raises(resilient.CircuitOpenError):
            query()
    assert sink.counter("circuit_breaker_opens_total", breaker="metrics-db") == 1
    assert sink.counter("calls_rejected_total", breaker="metrics-db") == 3
    assert sink.gauge_value("open_circuits", breaker="metrics-db") == 1
    report = resilient.telemetry.generate_report(["metrics-db"])
    assert report["summary"]["health_status"] == "critical"
    assert report["services"] == {"metrics-db": "open"}
    resilient.get_breaker("metrics-db").reset()
    assert sink.gauge_value("open_circuits", breaker="metrics-db") == 0


def test_retry_with_tenacity_strategies_records_latency(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """A @retry with tenacity strategies goes through the observation step, sync and async."""

    @resilient.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(1))
    def fine() -> int:
        fake_clock.advance(0.5)
        return 1

    @resilient.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(1))
    async def afine() -> int:
        fake_clock.advance(0.25)
        return 2

    assert fine() == 1
    assert asyncio.run(afine()) == 2
    assert sink.timings("request_latency_ms", policy=f"{__name__}.{fine.__qualname__}") == [500.0]
    assert sink.timings("request_latency_ms", policy=f"{__name__}.{afine.__qualname__}") == [250.0]


def test_rejections_through_call_and_the_context_manager_are_counted_per_breaker(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """CircuitBreaker.call() and `with b:` on an open breaker count calls_rejected_total
    tagged with the breaker's name, as the decorator does."""
    b = resilient.CircuitBreaker("metrics-object", resilient.BreakerConfig(failure_threshold=1))
    b.force_open()
    with pytest.raises(resilient.CircuitOpenError):
        b.call(lambda: None)
    with pytest.raises(resilient.CircuitOpenError), b:
        pytest.fail("the body must not run")
    assert sink.counter("calls_rejected_total", breaker="metrics-object") == 2


async def test_async_windowed_result_trip_counts_the_open(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """An async windowed breaker tripped by bad results counts the open and sets the gauge."""
    config = resilient.BreakerConfig(
        failure_rate=0.5, window_size=4, minimum_calls=2, failure_result=lambda r: r is None
    )

    @resilient.breaker("metrics-results", config)
    async def lookup() -> None:
        return None

    for _ in range(2):
        assert await lookup() is None
    assert sink.counter("circuit_breaker_opens_total", breaker="metrics-results") == 1
    assert sink.gauge_value("open_circuits", breaker="metrics-results") == 1

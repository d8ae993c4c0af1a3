"""The health report: the seed's status rules at every boundary, over a sliding window."""

from __future__ import annotations

import json
import logging

import pytest

import resilient
from resilient import telemetry
from resilient._runtime.logs import ErrorDigest
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def errors(count: int) -> None:
    for _ in range(count):
        telemetry.record_http_error("timeout", "/api/ai")


@pytest.mark.parametrize(
    ("count", "status"),
    [(0, "healthy"), (9, "healthy"), (10, "degraded"), (50, "degraded"), (51, "unhealthy")],
)
def test_error_count_boundaries(fake_clock: FakeClock, count: int, status: str) -> None:
    """9 errors are healthy, 10 to 50 degraded, 51 unhealthy."""
    errors(count)
    report = telemetry.generate_report()
    assert report["summary"]["health_status"] == status
    assert report["summary"]["total_errors"] == count


@pytest.mark.parametrize(
    ("ms", "status"),
    [(999, "healthy"), (1000, "degraded"), (2000, "degraded"), (2001, "unhealthy")],
)
def test_latency_boundaries(fake_clock: FakeClock, ms: float, status: str) -> None:
    """p95 under 1 s is healthy, 1 to 2 s degraded, over 2 s unhealthy."""
    for _ in range(20):
        telemetry.record_request_latency("/api/users", ms)
    report = telemetry.generate_report()
    assert report["summary"]["health_status"] == status
    assert report["latency_ms"]["p95"] == ms


def test_p95_ignores_the_slowest_five_percent(fake_clock: FakeClock) -> None:
    """One slow request in a hundred does not make the service degraded."""
    for _ in range(99):
        telemetry.record_request_latency("/api", 100)
    telemetry.record_request_latency("/api", 5000)
    report = telemetry.generate_report()
    assert report["summary"]["health_status"] == "healthy"
    assert report["latency_ms"]["max"] == 5000
    assert report["latency_ms"]["p99"] == 100


def test_one_open_circuit_is_critical(fake_clock: FakeClock) -> None:
    """Any open breaker makes the status critical, whatever the other figures."""
    telemetry.add_circuit_source(lambda: {"ai-service": "open", "db": "closed"})
    try:
        report = telemetry.generate_report(["ai-service"])
    finally:
        telemetry._circuit_sources.pop()
    assert report["summary"]["health_status"] == "critical"
    assert report["open_circuits"] == ["ai-service"]
    assert report["services"] == {"ai-service": "open"}


def test_the_window_slides(fake_clock: FakeClock) -> None:
    """Errors older than the window no longer count."""
    errors(60)
    assert telemetry.generate_report()["summary"]["health_status"] == "unhealthy"
    fake_clock.advance(299)
    errors(5)
    assert telemetry.generate_report()["summary"]["total_errors"] == 65
    fake_clock.advance(2)
    report = telemetry.generate_report()
    assert report["summary"]["total_errors"] == 5
    assert report["summary"]["health_status"] == "healthy"


def test_report_is_json_and_says_why(fake_clock: FakeClock) -> None:
    """The report serialises to JSON and names the rule that decided."""
    errors(12)
    report = json.loads(json.dumps(telemetry.generate_report()))
    assert report["errors_by_type"] == {"timeout": 12}
    assert "12 errors" in report["summary"]["reason"]


def test_decorated_calls_feed_the_window(fake_clock: FakeClock) -> None:
    """With metrics on, every decorated call's latency reaches the report."""
    resilient.configure(metrics=MemorySink())

    @resilient.timeout(10)
    def slow() -> None:
        fake_clock.sleep(1.5)

    for _ in range(3):
        slow()
    report = telemetry.generate_report()
    assert report["latency_ms"]["count"] == 3
    assert report["latency_ms"]["p50"] == 1500
    assert report["summary"]["health_status"] == "degraded"


def test_digest_folds_repeats_and_says_when_they_stop(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """First error logged at once, repeats counted into one line, then a recovery line."""
    digest = ErrorDigest(window=60)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        for _ in range(100):
            digest.report("store error", "breaker ai", "connection refused")
        assert len(caplog.records) == 1
        fake_clock.advance(61)
        digest.tick()
        fake_clock.advance(61)
        digest.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "breaker ai: store error: connection refused",
        "breaker ai: store error: 99 more in the last 60s; latest: connection refused",
        "breaker ai: store error: recovered (none in the last 60s)",
    ]


def test_sync_and_gauges_reach_the_sink(fake_clock: FakeClock) -> None:
    """record_sync and set_gauge go through the configured sink and into the report."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    telemetry.record_sync(success=True, items=3)
    telemetry.record_sync(success=False)
    telemetry.set_gauge("pending_sync_items", 7)
    assert sink.counter("sync_success_total") == 3
    assert sink.counter("sync_failures_total") == 1
    assert sink.gauge_value("pending_sync_items") == 7
    report = telemetry.generate_report()
    assert report["errors_by_type"] == {"sync_failure": 1}
    assert report["gauges"] == {"pending_sync_items": 7}


def test_percentiles_pick_the_nearest_rank(fake_clock: FakeClock) -> None:
    """Over latencies 1..100 ms, p50 is 50, p95 95, p99 99 and max 100 (nearest rank)."""
    for ms in range(100, 0, -1):  # out of order: the report sorts
        telemetry.record_request_latency("/api", ms)
    latency = telemetry.generate_report()["latency_ms"]
    assert latency == {"count": 100, "p50": 50, "p95": 95, "p99": 99, "max": 100}
    telemetry.window.clear()
    for ms in (10, 20, 30):
        telemetry.record_request_latency("/api", ms)
    latency = telemetry.generate_report()["latency_ms"]
    assert (latency["p50"], latency["p95"], latency["max"]) == (20, 30, 30)


def test_an_empty_window_reports_no_latency(fake_clock: FakeClock) -> None:
    """Without samples, every latency figure is None and the count is 0."""
    latency = telemetry.generate_report()["latency_ms"]
    assert latency == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}


def test_the_latency_window_keeps_a_sample_exactly_window_seconds_old(
    fake_clock: FakeClock,
) -> None:
    """A sample exactly ``window`` seconds old still counts; one a moment older does not."""
    telemetry.record_request_latency("/api", 1500)
    fake_clock.advance(telemetry.window.seconds)
    report = telemetry.generate_report()
    assert report["latency_ms"]["count"] == 1
    assert report["summary"]["requests"] == 1
    assert report["summary"]["health_status"] == "degraded"
    fake_clock.advance(0.001)
    report = telemetry.generate_report()
    assert report["latency_ms"]["count"] == 0
    assert report["summary"]["health_status"] == "healthy"


def test_the_error_window_keeps_an_error_exactly_window_seconds_old(fake_clock: FakeClock) -> None:
    """An error exactly ``window`` seconds old still counts; a moment later it is gone."""
    errors(10)
    fake_clock.advance(telemetry.window.seconds)
    assert telemetry.generate_report()["summary"]["total_errors"] == 10
    fake_clock.advance(0.001)
    assert telemetry.generate_report()["summary"]["total_errors"] == 0


def test_counters_and_gauges_reach_the_report_with_no_sink(fake_clock: FakeClock) -> None:
    """With metrics off, the report still shows counters (summed) and gauges (last value)."""
    assert resilient.configuration().metrics is None
    telemetry.record_retry_attempt("standard")
    telemetry.record_retry_attempt("standard")
    telemetry.record_fallback("ai")
    telemetry.record_sync(success=True, items=4)
    telemetry.set_gauge("pending_sync_items", 3)
    telemetry.set_gauge("pending_sync_items", 5)
    telemetry.set_gauge("active_requests", 2, host="api.example")
    report = telemetry.generate_report()
    assert report["counters"] == {
        "retry_attempts_total": 2,
        "fallbacks_used_total": 1,
        "sync_success_total": 4,
    }
    assert report["gauges"] == {"pending_sync_items": 5, "active_requests,host=api.example": 2}

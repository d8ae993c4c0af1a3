"""The ``record_*`` functions: what reaches the configured sink and what the report shows."""

from __future__ import annotations

import sys
import time

import resilient
from resilient import telemetry
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def test_a_recorded_latency_reaches_the_sink_tagged_with_its_endpoint(
    fake_clock: FakeClock,
) -> None:
    """record_request_latency sends the timing to the sink under its endpoint, and the
    report counts it as of the moment it was recorded."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    telemetry.record_request_latency("lessons", 120.0)
    assert sink.timings("request_latency_ms", endpoint="lessons") == [120.0]
    assert sink.series()["request_latency_ms"] == [{"endpoint": "lessons"}]
    fake_clock.advance(telemetry.window.seconds)
    latency = telemetry.generate_report()["latency_ms"]
    assert (latency["count"], latency["p50"]) == (1, 120.0)
    fake_clock.advance(1)
    assert telemetry.generate_report()["latency_ms"]["count"] == 0


def test_a_recorded_latency_without_a_sink_is_in_the_report(fake_clock: FakeClock) -> None:
    """With metrics off, recorded latencies still feed the report's window."""
    telemetry.record_request_latency("lessons", 80.0)
    telemetry.record_request_latency("lessons", 40.0)
    latency = telemetry.generate_report()["latency_ms"]
    assert (latency["count"], latency["p50"], latency["max"]) == (2, 40.0, 80.0)


def test_http_errors_retries_and_fallbacks_reach_the_sink_with_their_tags() -> None:
    """record_http_error, record_retry_attempt and record_fallback count in the sink under
    their tags; the policy defaults to the empty string."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    telemetry.record_http_error("timeout", "/lessons")
    telemetry.record_retry_attempt()
    telemetry.record_fallback()
    series = sink.series()
    assert series["client_http_errors_total"] == [{"type": "timeout", "endpoint": "/lessons"}]
    assert series["retry_attempts_total"] == [{"policy": ""}]
    assert series["fallbacks_used_total"] == [{"policy": ""}]


def test_an_http_error_without_an_endpoint_is_tagged_with_an_empty_one() -> None:
    """record_http_error's endpoint defaults to the empty string in the sink's tags."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    telemetry.record_http_error("connect")
    assert sink.series()["client_http_errors_total"] == [{"type": "connect", "endpoint": ""}]


def test_count_error_reports_the_error_under_its_type_tag(fake_clock: FakeClock) -> None:
    """count_error passes its tags on: the report lists the error under its type tag."""
    telemetry.count_error("client_http_errors_total", (("type", "5xx"), ("endpoint", "/x")))
    assert telemetry.generate_report()["errors_by_type"] == {"5xx": 1}


def test_an_error_counter_without_a_type_is_reported_under_its_own_name(
    fake_clock: FakeClock,
) -> None:
    """An HTTP error counted with no type tag appears under the counter's name."""
    telemetry.window.increment("client_http_errors_total")
    assert telemetry.generate_report()["errors_by_type"] == {"client_http_errors_total": 1}


def test_a_window_of_its_own_keeps_its_settings_and_its_data() -> None:
    """A TelemetryWindow made apart from the global one keeps its length, its sample bound,
    and takes counters, timings and gauges, dropping gauges on request."""
    own = telemetry.TelemetryWindow(seconds=60, max_samples=2)
    assert own.seconds == 60
    own.increment("sync_failures_total", 2)
    for ms in (1.0, 2.0, 3.0):
        own.timing("request_latency_ms", ms)
    own.gauge("open_circuits", 1, (("breaker", "a"),))
    own.gauge("open_circuits", 1, (("breaker", "b"),))
    own.drop_gauges("open_circuits", [(("breaker", "a"),)])
    assert own.totals == {"sync_failures_total": 2}
    assert [ms for _, ms in own.latencies] == [2.0, 3.0]
    assert own.gauges == {("open_circuits", (("breaker", "b"),)): 1}


def test_the_report_has_its_documented_fields(fake_clock: FakeClock) -> None:
    """generate_report() has every documented field, a UTC timestamp and an uptime in
    milliseconds; an idle process with metrics on is healthy and says why."""
    resilient.configure(metrics=MemorySink())
    report = telemetry.generate_report()
    assert set(report) == {
        "generated_at",
        "window_seconds",
        "summary",
        "latency_ms",
        "errors_by_type",
        "open_circuits",
        "services",
        "saturated_bulkheads",
        "counters",
        "gauges",
        "uptime_seconds",
    }
    assert report["summary"] == {
        "health_status": "healthy",
        "reason": "fewer than 10 errors, p95 latency under 1 s, no open circuit",
        "total_errors": 0,
        "latency_p95_ms": None,
        "latency_measured": True,
        "open_circuits": 0,
        "requests": 0,
        "saturated_bulkheads": 0,
    }
    assert report["window_seconds"] == telemetry.window.seconds
    assert report["generated_at"].endswith("+00:00")
    uptime = report["uptime_seconds"]
    assert isinstance(uptime, float)
    assert uptime == round(uptime, 3)


def test_dropping_most_gauges_gives_the_memory_back() -> None:
    """Dropping most of a window's gauges copies the dict, so its size shrinks; dropping a
    gauge that was never set is no error."""
    own = telemetry.TelemetryWindow()
    for index in range(1000):
        own.gauge("open_circuits", 0, (("breaker", f"b{index}"),))
    full = sys.getsizeof(own.gauges)
    own.drop_gauges("open_circuits", [(("breaker", f"b{index}"),) for index in range(990)])
    own.drop_gauges("open_circuits", [(("breaker", "never-set"),)])
    assert len(own.gauges) == 10
    assert sys.getsizeof(own.gauges) < full / 10


def test_with_metrics_off_the_report_says_latency_was_not_measured(fake_clock: FakeClock) -> None:
    """With metrics off and no latency recorded, the healthy reason says it is unmeasured."""
    summary = telemetry.generate_report()["summary"]
    assert (summary["health_status"], summary["latency_measured"]) == ("healthy", False)
    assert summary["reason"] == (
        "fewer than 10 errors, no open circuit; latency not measured (metrics are off)"
    )


def test_the_report_lists_a_service_it_does_not_know_as_unknown(fake_clock: FakeClock) -> None:
    """A name passed in services= that no breaker has is listed as "unknown"."""
    assert telemetry.generate_report(services=["nobody"])["services"] == {"nobody": "unknown"}


def test_the_report_names_a_gauge_with_each_of_its_tags(fake_clock: FakeClock) -> None:
    """A gauge's key in the report is its name followed by ",key=value" for every tag."""
    telemetry.set_gauge("active_requests", 3, route="/a", method="GET")
    gauges = telemetry.generate_report()["gauges"]
    assert gauges == {"active_requests,route=/a,method=GET": 3}


def test_the_uptime_counts_from_when_resilient_was_imported() -> None:
    """uptime_seconds is the monotonic time elapsed since the telemetry module was loaded."""
    before = time.monotonic() - telemetry._STARTED
    uptime = telemetry.generate_report()["uptime_seconds"]
    after = time.monotonic() - telemetry._STARTED
    assert before - 0.001 <= uptime <= after + 0.001


def test_a_window_keeps_five_minutes_and_ten_thousand_samples_by_default() -> None:
    """TelemetryWindow() covers the documented 300 s and keeps at most 10,000 samples."""
    default = telemetry.TelemetryWindow()
    assert default.seconds == 300.0
    assert default.latencies.maxlen == default.errors.maxlen == 10_000

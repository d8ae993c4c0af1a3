"""The ``record_*`` functions: what reaches the configured sink and what the report shows."""

from __future__ import annotations

import resilient
from resilient import telemetry
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def test_a_recorded_latency_reaches_the_sink_tagged_with_its_endpoint(clock: FakeClock) -> None:
    """record_request_latency sends the timing to the sink under its endpoint, and the
    report counts it as of the moment it was recorded."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    telemetry.record_request_latency("lessons", 120.0)
    assert sink.timings("request_latency_ms", endpoint="lessons") == [120.0]
    assert sink.series()["request_latency_ms"] == [{"endpoint": "lessons"}]
    clock.advance(telemetry.window.seconds)
    latency = telemetry.generate_report()["latency_ms"]
    assert (latency["count"], latency["p50"]) == (1, 120.0)
    clock.advance(1)
    assert telemetry.generate_report()["latency_ms"]["count"] == 0


def test_a_recorded_latency_without_a_sink_is_in_the_report(clock: FakeClock) -> None:
    """With metrics off, recorded latencies still feed the report's window."""
    telemetry.record_request_latency("lessons", 80.0)
    telemetry.record_request_latency("lessons", 40.0)
    latency = telemetry.generate_report()["latency_ms"]
    assert (latency["count"], latency["p50"], latency["max"]) == (2, 40.0, 80.0)

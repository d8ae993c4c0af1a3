"""OpenTelemetrySink: counters, observable gauges and second-based histograms, read back
through the OpenTelemetry SDK's in-memory reader."""

from __future__ import annotations

from typing import Any

import pytest

import resilient
from resilient.metrics import OpenTelemetrySink

sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
sdk_export = pytest.importorskip("opentelemetry.sdk.metrics.export")


@pytest.fixture
def reader() -> Any:
    return sdk_export.InMemoryMetricReader()


@pytest.fixture
def provider(reader: Any) -> Any:
    made = sdk_metrics.MeterProvider(metric_readers=[reader])
    yield made
    made.shutdown()


def collected(reader: Any) -> dict[str, Any]:
    """Every metric the reader collects now, by instrument name."""
    data = reader.get_metrics_data()
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def points(metric: Any) -> dict[tuple[tuple[str, str], ...], Any]:
    return {tuple(sorted(p.attributes.items())): p for p in metric.data.data_points}


def test_counters_are_summed_per_attribute_set(provider: Any, reader: Any) -> None:
    """increment() adds to a Counter named by the base name; tags become attributes."""
    sink = OpenTelemetrySink(meter_provider=provider)
    sink.increment("retry_attempts_total", 1, (("policy", "ai"),))
    sink.increment("retry_attempts_total", 2, (("policy", "ai"),))
    sink.increment("retry_attempts_total", 5, (("policy", "db"),))
    metric = collected(reader)["resilient.retry_attempts"]
    assert metric.data.is_monotonic
    found = points(metric)
    assert found[(("policy", "ai"),)].value == 3
    assert found[(("policy", "db"),)].value == 5
    assert "Retries" in metric.description


def test_gauges_are_observed_with_their_last_value(provider: Any, reader: Any) -> None:
    """gauge() keeps the last value per attribute set; the provider reads it when it collects."""
    sink = OpenTelemetrySink(meter_provider=provider)
    sink.gauge("open_circuits", 1, (("breaker", "db"),))
    sink.gauge("open_circuits", 0, (("breaker", "db"),))
    sink.gauge("open_circuits", 1, (("breaker", "ai"),))
    metric = collected(reader)["resilient.open_circuits"]
    found = points(metric)
    assert found[(("breaker", "db"),)].value == 0
    assert found[(("breaker", "ai"),)].value == 1
    sink.gauge("open_circuits", 1, (("breaker", "db"),))
    assert points(collected(reader)["resilient.open_circuits"])[(("breaker", "db"),)].value == 1


def test_timings_are_histograms_in_seconds(provider: Any, reader: Any) -> None:
    """timing() in milliseconds records seconds into a Histogram with unit "s"."""
    sink = OpenTelemetrySink(meter_provider=provider, prefix="aivo.")
    sink.timing("request_latency_ms", 250.0, (("policy", "ai"),))
    sink.timing("request_latency_ms", 1500.0, (("policy", "ai"),))
    metric = collected(reader)["aivo.request_latency"]
    assert metric.unit == "s"
    (point,) = metric.data.data_points
    assert dict(point.attributes) == {"policy": "ai"}
    assert point.count == 2
    assert point.sum == pytest.approx(1.75)
    assert point.max == pytest.approx(1.5)


def test_decorated_calls_reach_the_meter(provider: Any, reader: Any) -> None:
    """Through configure(): a retried call counts its retry and its latency in seconds."""
    resilient.configure(metrics=OpenTelemetrySink(meter_provider=provider))
    calls: list[int] = []

    @resilient.retry(attempts=2, initial_delay=0)
    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError
        return "ok"

    assert flaky() == "ok"
    found = collected(reader)
    (retries,) = found["resilient.retry_attempts"].data.data_points
    assert retries.value == 1
    assert dict(retries.attributes)["policy"].endswith("flaky")
    (latency,) = found["resilient.request_latency"].data.data_points
    assert latency.count == 1
    assert 0 <= latency.sum < 5  # seconds, not milliseconds


def test_a_meter_can_be_given_and_odd_names_still_make_instruments(
    provider: Any, reader: Any
) -> None:
    """A given meter is used as it is; a name with separators becomes a valid instrument."""
    sink = OpenTelemetrySink(provider.get_meter("mine"), prefix="")
    sink.gauge("x:5|c\ninjected", 7, ())
    sink.increment("chaos_injections_total", 1, (("kind", "fault"),))
    found = collected(reader)
    assert points(found["x_5_c_injected"])[()].value == 7
    assert "chaos_injections" in found


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"prefix": "bad prefix"}, "prefix"),
        ({"prefix": "1abc"}, "prefix"),
        ({"meter": "meter"}, "meter"),
        ({"meter_provider": "provider"}, "meter_provider"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], parameter: str) -> None:
    """A bad prefix, meter or provider raises ConfigError naming it."""
    with pytest.raises(resilient.ConfigError) as caught:
        OpenTelemetrySink(**options)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_a_meter_and_a_provider_together_are_refused(provider: Any) -> None:
    """Only one of meter and meter_provider says where instruments come from."""
    with pytest.raises(resilient.ConfigError) as caught:
        OpenTelemetrySink(provider.get_meter("x"), meter_provider=provider)
    assert caught.value.parameter == "meter_provider"


@pytest.mark.realtime
def test_a_gauge_made_during_a_collection_does_not_deadlock(provider: Any, reader: Any) -> None:
    """A new gauge recorded while the provider collects (its callbacks run under the SDK's
    lock, which making an observable gauge takes too) does not hang the call or the reader."""
    import threading

    from opentelemetry.metrics import Observation

    sink = OpenTelemetrySink(meter_provider=provider)
    recorder = threading.Thread(target=sink.gauge, args=("bulkhead_active", 1.0), daemon=True)

    def user_gauge(options: object) -> list[Any]:
        # Runs under the SDK's collection lock: a call records a gauge never seen before.
        if recorder.ident is None:
            recorder.start()
            recorder.join(0.05)
        return [Observation(1)]

    provider.get_meter("app").create_observable_gauge("app.queue", callbacks=[user_gauge])
    sink.gauge("open_circuits", 1.0)  # an existing gauge: its callback runs after the user's
    collector = threading.Thread(target=reader.get_metrics_data, daemon=True)
    collector.start()
    collector.join(5)
    recorder.join(5)
    assert not collector.is_alive()
    assert not recorder.is_alive()
    assert "resilient.bulkhead_active" in collected(reader)

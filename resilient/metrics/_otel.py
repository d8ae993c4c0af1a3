"""``OpenTelemetrySink``: the same metrics as OpenTelemetry instruments.

Needs the ``otel`` extra (``opentelemetry-api``); which SDK, readers and exporters run is
the application's choice, made on its meter provider. Counters become ``Counter``
instruments, gauges ``ObservableGauge`` instruments (their last value per attribute set,
read when the provider collects), timings ``Histogram`` instruments in seconds
(``unit="s"``); tags become attributes. Instrument names are the declared base names
(``resilient.retry_attempts``, ``resilient.request_latency``): exporters add the type
and unit suffixes their backend expects (``_total``, ``_seconds`` for Prometheus).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from .._runtime.types import Tags
from ..exceptions import ConfigError
from ._names import CATALOG, LATENCY_BUCKETS_SECONDS

__all__ = ["OpenTelemetrySink"]

_PREFIX = re.compile(r"(?:[A-Za-z][A-Za-z0-9_.\-/]*)?")
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.\-/]")
_MAX_NAME = 255
_MAX_ATTRIBUTE_SETS = 10_000  # cached attribute dicts; series are few


def _base(kind: str, name: str) -> str:
    """The instrument name's stem: the declared base, or the name less its suffix."""
    declared = CATALOG.get(name)
    if declared is not None:
        return declared.base
    suffix = {"counter": "_total", "timing": "_ms"}[kind] if kind != "gauge" else ""
    return name.removesuffix(suffix) if suffix and name != suffix else name


class OpenTelemetrySink:
    """Records into OpenTelemetry instruments of one meter.

    ``meter``: a meter to use as it is; otherwise one named ``resilient`` is taken from
    ``meter_provider`` (the global provider when ``None``). ``prefix`` goes before every
    instrument name (``"resilient."`` by default; ``""`` for none).
    """

    def __init__(
        self, meter: Any = None, *, meter_provider: Any = None, prefix: str = "resilient."
    ) -> None:
        try:
            from opentelemetry import metrics as otel_metrics
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "OpenTelemetrySink needs opentelemetry-api: pip install 'resilient-toolkit[otel]'"
            ) from error
        given: object = prefix  # checked at run time whatever the annotation says
        if not isinstance(given, str) or not _PREFIX.fullmatch(given) or len(given) > 128:
            raise ConfigError(
                "prefix", prefix, "'' or an instrument name start ([A-Za-z][A-Za-z0-9_.-/]*)"
            )
        if meter is not None:
            if meter_provider is not None:
                raise ConfigError("meter_provider", meter_provider, "None when meter is given")
            if not isinstance(meter, otel_metrics.Meter):
                raise ConfigError("meter", meter, "an opentelemetry.metrics.Meter or None")
        else:
            if meter_provider is not None and not isinstance(
                meter_provider, otel_metrics.MeterProvider
            ):
                raise ConfigError(
                    "meter_provider", meter_provider, "an opentelemetry.metrics.MeterProvider"
                )
            meter = otel_metrics.get_meter("resilient", meter_provider=meter_provider)
        self.meter: Any = meter  # an opentelemetry.metrics.Meter
        self.prefix = prefix
        self._observation = otel_metrics.Observation
        self._lock = threading.Lock()
        """Held while an instrument is made (the SDK takes its own locks then)."""
        self._values_lock = threading.Lock()
        """Held while gauge values are written or read. Never the lock held while making
        an instrument: the SDK calls the gauges' callbacks under its collection lock,
        which making an observable gauge takes too (one lock for both deadlocks)."""
        self._instruments: dict[tuple[str, str], Any] = {}
        self._gauges: dict[str, dict[Tags, float]] = {}
        self._attributes: dict[Tags, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"OpenTelemetrySink(prefix={self.prefix!r})"

    def _name(self, kind: str, name: str) -> str:
        text = _NOT_IN_NAMES.sub("_", self.prefix + _base(kind, name))
        if not text[:1].isalpha() or not text.isascii():
            text = "m_" + text
        return text[:_MAX_NAME]

    def _instrument(self, kind: str, name: str) -> Any:
        found = self._instruments.get((kind, name))
        if found is None:
            with self._lock:
                found = self._instruments.get((kind, name))
                if found is None:
                    found = self._instruments[kind, name] = self._create(kind, name)
        return found

    def _create(self, kind: str, name: str) -> Any:
        declared = CATALOG.get(name)
        description = declared.help if declared is not None else ""
        full = self._name(kind, name)
        meter = self.meter
        if kind == "counter":
            return meter.create_counter(full, unit="1", description=description)
        if kind == "timing":
            try:
                return meter.create_histogram(
                    full,
                    unit="s",
                    description=description,
                    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_SECONDS,
                )
            except TypeError:  # an API without bucket advice: the provider's views decide
                return meter.create_histogram(full, unit="s", description=description)
        values: dict[Tags, float] = {}
        self._gauges[name] = values
        return meter.create_observable_gauge(
            full, callbacks=[self._observer(values)], unit="1", description=description
        )

    def _observer(self, values: dict[Tags, float]) -> Any:
        observation, lock, attributes = self._observation, self._values_lock, self._attributes_of

        def observe(options: object) -> Iterable[Any]:
            with lock:
                current = list(values.items())
            return [observation(value, attributes(tags)) for tags, value in current]

        return observe

    def _attributes_of(self, tags: Tags) -> dict[str, str]:
        found = self._attributes.get(tags)
        if found is None:
            found = dict(tags)
            if len(self._attributes) < _MAX_ATTRIBUTE_SETS:
                self._attributes[tags] = found
        return found

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        self._instrument("counter", name).add(value, self._attributes_of(tags))

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        self._instrument("gauge", name)
        with self._values_lock:
            self._gauges[name][tags] = value

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        self._instrument("timing", name).record(ms / 1000.0, self._attributes_of(tags))

    def flush(self) -> None:
        """Nothing to do: the meter provider's readers collect on their own schedule."""

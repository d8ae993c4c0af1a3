"""``PrometheusSink``: the same metric names as Prometheus counters, gauges and histograms.

Needs the ``prometheus`` extra (``prometheus_client``). Each metric's label names are
fixed by the first value recorded (Prometheus requires one label set per metric); a
value with other labels is logged once and skipped.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from .._runtime.logs import digest
from .._runtime.types import Tags
from ..exceptions import ConfigError

__all__ = ["PrometheusSink"]

_NAMESPACE = re.compile(r"(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?")
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000)


class PrometheusSink:
    """Records into a ``prometheus_client`` registry (the default one unless given)."""

    def __init__(self, registry: Any = None, *, namespace: str = "") -> None:
        try:
            import prometheus_client
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PrometheusSink needs prometheus_client: "
                "pip install 'resilient-toolkit[prometheus]'"
            ) from error
        if registry is not None and not isinstance(registry, prometheus_client.CollectorRegistry):
            raise ConfigError("registry", registry, "a prometheus_client.CollectorRegistry or None")
        given: object = namespace  # checked at run time whatever the annotation says
        if not isinstance(given, str) or not _NAMESPACE.fullmatch(given):
            raise ConfigError(
                "namespace", namespace, "'' or a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
            )
        self._client = prometheus_client
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self.namespace = namespace
        self._metrics: dict[str, tuple[Any, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def _metric(self, kind: str, name: str, tags: Tags) -> Any:
        found = self._metrics.get(name)
        if found is None:
            with self._lock:
                found = self._metrics.get(name)
                if found is None:
                    labels = tuple(k for k, _ in tags)
                    factory = getattr(self._client, kind)
                    extra = {"buckets": LATENCY_BUCKETS_MS} if kind == "Histogram" else {}
                    metric = factory(
                        name,
                        f"resilient {name}",
                        labels,
                        namespace=self.namespace,
                        registry=self.registry,
                        **extra,
                    )
                    found = self._metrics[name] = (metric, labels)
        metric, labels = found
        if tuple(k for k, _ in tags) != labels:
            digest.report("metric labels differ", name, f"expected {labels}, got {tags}")
            return None
        return metric.labels(*(v for _, v in tags)) if labels else metric

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        metric = self._metric("Counter", name, tags)
        if metric is not None:
            metric.inc(value)

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        metric = self._metric("Gauge", name, tags)
        if metric is not None:
            metric.set(value)

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        metric = self._metric("Histogram", name, tags)
        if metric is not None:
            metric.observe(ms)

    def flush(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"PrometheusSink(namespace={self.namespace!r})"

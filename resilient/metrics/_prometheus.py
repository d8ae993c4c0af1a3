"""``PrometheusSink``: the same metrics as Prometheus counters, gauges and histograms.

Needs the ``prometheus`` extra (``prometheus_client``). Every declared metric
(``resilient.metrics.names.CATALOG``) has one label set whoever records it: a label a
recorder leaves out is exported empty (``request_latency_seconds{policy="",
endpoint="api"}`` from the HTTP client). Latencies are ``<base>_seconds`` histograms, HELP
is the declared description. Collectors are shared per registry, so several sinks on
one registry record into the same series instead of colliding.

Multi-process servers (gunicorn, uWSGI) use ``prometheus_client``'s multiprocess mode:
``PROMETHEUS_MULTIPROC_DIR`` set before the first import of ``prometheus_client``; each
worker writes its values there; the scrape endpoint reads them all through a
``MultiProcessCollector``. Gauges then aggregate over live workers as ``MULTIPROCESS_MODES``
says (``livesum`` for in-flight work, ``livemax`` for open breakers).
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Any, Final

from .._runtime.logs import digest
from .._runtime.types import Tags
from ..exceptions import ConfigError
from ._names import (
    ACTIVE_REQUESTS,
    BULKHEAD_ACTIVE,
    CATALOG,
    DEAD_LETTER_ITEMS,
    LATENCY_BUCKETS_SECONDS,
    OPEN_CIRCUITS,
    PENDING_SYNC_ITEMS,
)

__all__ = ["MULTIPROCESS_MODES", "PrometheusSink"]

_NAMESPACE = re.compile(r"(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?")
_NOT_IN_NAMES = re.compile(r"[^a-zA-Z0-9_:]")
_MAX_SERIES = 10_000  # cached series per sink; series are few
_KINDS: Final = {"counter": "Counter", "gauge": "Gauge", "timing": "Histogram"}

MULTIPROCESS_MODES: Final = {
    ACTIVE_REQUESTS: "livesum",
    BULKHEAD_ACTIVE: "livesum",
    # Every worker sharing an outbox reports the whole backlog: the largest is the truth.
    PENDING_SYNC_ITEMS: "livemax",
    DEAD_LETTER_ITEMS: "livemax",
    OPEN_CIRCUITS: "livemax",
}
"""How a gauge combines over the workers of a multi-process server; others: ``liveall``
(one series per worker, with a ``pid`` label)."""

_Entry = tuple[Any, tuple[str, ...], bool]  # (collector or None, its labels, declared)

# One collector per (registry, metric name), whichever sink created it: registering a
# second collector of the same name in one registry is refused by prometheus_client.
_shared: weakref.WeakKeyDictionary[Any, dict[str, _Entry]] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _exported_name(kind: str, name: str) -> str:
    """The Prometheus name: the declared one, or ``<name>_seconds`` for an undeclared timing."""
    declared = CATALOG.get(name)
    if declared is not None:
        return declared.prometheus_name
    if kind == "timing":
        return f"{name.removesuffix('_ms')}_seconds"
    return name


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
        self.registry: Any = registry if registry is not None else prometheus_client.REGISTRY
        self.namespace = namespace
        with _shared_lock:
            self._metrics = _shared.setdefault(self.registry, {})
        self._children: dict[tuple[str, str, Tags], Any] = {}

    def _child(self, kind: str, name: str, tags: Tags) -> Any:
        """The labelled series to record into (``None``: the value is skipped), cached."""
        key = (kind, name, tags)
        try:
            return self._children[key]
        except KeyError:
            pass
        child = self._series(kind, name, tags)
        if len(self._children) < _MAX_SERIES:
            self._children[key] = child
        return child

    def _series(self, kind: str, name: str, tags: Tags) -> Any:
        key = f"{self.namespace}:{kind}:{name}"
        found = self._metrics.get(key)
        if found is None:
            with _shared_lock:
                found = self._metrics.get(key)
                if found is None:
                    found = self._metrics[key] = self._create(kind, name, tags)
        metric, labels, declared = found
        if metric is None:
            return None
        given = dict(tags)
        if not labels:
            if tags:
                digest.report("metric labels differ", name, f"expected no labels, got {tags}")
            return metric
        if declared:
            extra = sorted(given.keys() - set(labels))
            if extra:
                digest.report("metric labels differ", name, f"{extra} are not in {labels}")
            return metric.labels(*(given.get(label, "") for label in labels))
        if given.keys() != set(labels):  # the same labels in another order are the same
            digest.report("metric labels differ", name, f"expected {labels}, got {tags}")
            return None
        return metric.labels(*(given[label] for label in labels))

    def _create(self, kind: str, name: str, tags: Tags) -> _Entry:
        declared = CATALOG.get(name)
        if declared is not None and declared.kind == kind:
            labels, help_text = declared.labels, declared.help
        else:
            declared = None
            labels, help_text = tuple(k for k, _ in tags), f"resilient metric {name}"
        exported = _NOT_IN_NAMES.sub("_", _exported_name(kind, name))
        options: dict[str, Any] = {}
        if kind == "timing":
            options["buckets"] = LATENCY_BUCKETS_SECONDS
        elif kind == "gauge":
            options["multiprocess_mode"] = MULTIPROCESS_MODES.get(name, "liveall")
        factory = getattr(self._client, _KINDS[kind])
        try:
            metric = factory(
                exported,
                help_text,
                labels,
                namespace=self.namespace,
                registry=self.registry,
                **options,
            )
        except ValueError as error:  # the name is taken in this registry by something else
            digest.report("metric not registered", exported, str(error))
            return None, labels, declared is not None
        return metric, labels, declared is not None

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        metric = self._child("counter", name, tags)
        if metric is not None:
            metric.inc(value)

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        metric = self._child("gauge", name, tags)
        if metric is not None:
            metric.set(value)

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        metric = self._child("timing", name, tags)
        if metric is not None:
            metric.observe(ms / 1000.0)

    def flush(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"PrometheusSink(namespace={self.namespace!r})"

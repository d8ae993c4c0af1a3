"""What the status page shows, as plain data (no web framework, no I/O of its own).

``StatusCollector.collect()`` reads this process's breakers, features, bulkheads and
telemetry window and returns the operator's view as a JSON-ready dict; ``public_view``
cuts it down to what anyone may see: the degradation level, counts, feature
availability and rates, but no breaker or bulkhead names (they are often hosts) and no
reasons. The ASGI app serves both; a WSGI adapter can serve them the same way.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from heapq import nsmallest
from typing import Any, Final

from .._runtime import config as _config
from ..metrics._names import FALLBACKS_USED, RETRY_ATTEMPTS

__all__ = ["BANNERS", "RATE_SPAN", "BulkheadSource", "StatusCollector", "public_view"]

BulkheadSource = Callable[[], Iterable[object]]
"""Returns the bulkheads to show: objects (or mappings) with ``name``, ``max_concurrent``
and ``active``, optionally ``max_queue`` and ``queued``."""

BANNERS: Final = {
    "none": "ok",
    "minor": "info",
    "moderate": "warning",
    "severe": "error",
    "critical": "fullscreen",
}
"""The banner of each degradation level, after its UI impact in the design table (normal,
info banner, warning banner, error banner, full-screen error)."""

RATE_SPAN: Final = 60.0
"""Seconds (on the configured clock) over which retry and fallback rates are measured."""

_SEVERITY: Final = {"forced_open": 4, "open": 3, "half_open": 2, "disabled": 1, "closed": 0}
_STATES: Final = tuple(_SEVERITY)
"""Where the bulkhead registry lives once ``@bulkhead`` exists (absent: no bulkhead section)."""


class StatusCollector:
    """Builds the status report; keeps the recent totals it needs for rates.

    ``limit`` bounds every list (the most severe breakers first); ``bulkheads`` returns
    the bulkheads to show (default: the ``@bulkhead`` registry when there is one, else
    the report says ``"bulkheads": null``). Thread-safe: builds may run on any thread.
    """

    def __init__(self, *, limit: int, bulkheads: BulkheadSource | None = None) -> None:
        self.limit = limit
        self.bulkheads = bulkheads
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=512)
        """(time, retries so far, fallbacks so far), one per build, within ``RATE_SPAN``."""
        self._lock = threading.Lock()

    def collect(self) -> dict[str, Any]:
        """The operator's report, built now (sync; may take a while with many breakers)."""
        from .._breaker.registry import CircuitBreakerRegistry
        from .._degradation import DegradationLevel, DegradationService, Features, level_for_health
        from ..telemetry import _percentile, _status, window, window_figures

        now = _config.state.now()
        registry = CircuitBreakerRegistry.instance
        registry.sweep_if_due(now)
        counts = dict.fromkeys(_STATES, 0)
        ranked: list[tuple[int, int, str, Any]] = []
        for breaker in registry:
            state = breaker.mode.value
            counts[state] = counts.get(state, 0) + 1
            severity = -_SEVERITY.get(state, 1)
            ranked.append((severity, 0 if breaker.critical else 1, breaker.name, breaker))
        top = nsmallest(self.limit, ranked, key=lambda row: row[:3])
        listed = [_breaker_entry(breaker) for *_, breaker in top]
        opened = counts["open"] + counts["forced_open"]
        open_names = [
            entry["name"] for entry in listed if entry["state"] in ("open", "forced_open")
        ]

        service = DegradationService.instance
        level = DegradationLevel.none
        features: list[dict[str, Any]] = []
        unavailable = 0
        for feature in Features.all():
            why = service.why_unavailable(feature)
            if why is not None:
                unavailable += 1
                level = max(level, feature.level)
            features.append(
                {
                    "name": feature.name,
                    "description": feature.description,
                    "available": why is None,
                    "level": feature.level.name,
                    "critical": feature.critical,
                    "reason": why,
                }
            )
        features.sort(key=lambda entry: (entry["available"], entry["name"]))

        latencies, errors_by_type, measured = window_figures()
        total_errors = sum(errors_by_type.values())
        p95 = _percentile(latencies, 0.95)
        status, reason = _status(total_errors, p95, open_names, measured)
        if opened > len(open_names):
            reason += f" and {opened - len(open_names)} more"
        level = max(level, level_for_health(status))
        limit = self.limit
        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "level": {
                "name": level.name,
                "rank": int(level),
                "description": level.description,
                "ui_impact": level.ui_impact,
                "banner": BANNERS[level.name],
            },
            "health": {"status": status, "reason": reason, "latency_p95_ms": p95},
            "breakers": {
                "total": len(ranked),
                **counts,
                "listed": listed,
                "omitted": len(ranked) - len(listed),
            },
            "features": {
                "total": len(features),
                "unavailable": unavailable,
                "listed": features[:limit],
                "omitted": max(0, len(features) - limit),
            },
            "bulkheads": self._bulkheads(),
            "errors": {
                "window_seconds": window.seconds,
                "total": total_errors,
                "by_type": dict(sorted(errors_by_type.items(), key=lambda kv: -kv[1])[:limit]),
            },
            "rates": self._rates(now, window.totals, measured),
        }

    def _rates(self, now: float, totals: Mapping[str, float], measured: bool) -> dict[str, Any]:
        """Retries and fallbacks per minute since the newest earlier build at least
        ``RATE_SPAN`` seconds ago (or the oldest one, if none is that old)."""
        retries = float(totals.get(RETRY_ATTEMPTS, 0))
        fallbacks = float(totals.get(FALLBACKS_USED, 0))
        with self._lock:
            samples = self._samples
            if samples and (now < samples[-1][0] or retries < samples[-1][1]):
                samples.clear()  # the clock was replaced or the totals were reset
            while len(samples) > 1 and samples[1][0] <= now - RATE_SPAN:
                samples.popleft()  # keep the newest sample at least RATE_SPAN old
            oldest = samples[0] if samples else None
            samples.append((now, retries, fallbacks))
        span = None if oldest is None else now - oldest[0]
        per_minute: tuple[float | None, float | None] = (None, None)
        if oldest is not None and span is not None and span >= 1.0:
            per_minute = (
                round((retries - oldest[1]) * 60.0 / span, 2),
                round((fallbacks - oldest[2]) * 60.0 / span, 2),
            )
        return {
            "measured": measured or bool(retries or fallbacks),
            "span_seconds": None if span is None else round(span, 1),
            "retries_per_minute": per_minute[0],
            "fallbacks_per_minute": per_minute[1],
            "retries_total": retries,
            "fallbacks_total": fallbacks,
        }

    def _bulkheads(self) -> dict[str, Any] | None:
        source = self.bulkheads if self.bulkheads is not None else _registered_bulkheads()
        entries = [_bulkhead_entry(found) for found in source()]
        if not entries:
            return None  # an app without bulkheads shows no such section
        saturated = [entry for entry in entries if entry["saturated"]]
        saturated.sort(key=lambda entry: entry["name"])
        return {
            "total": len(entries),
            "saturated": len(saturated),
            "listed": saturated[: self.limit],
            "omitted": max(0, len(saturated) - self.limit),
        }


def public_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """What anyone may see of ``report``: no breaker or bulkhead names, no reasons."""
    breakers = {k: v for k, v in report["breakers"].items() if k not in ("listed", "omitted")}
    features = dict(report["features"])
    features["listed"] = [
        {k: v for k, v in entry.items() if k != "reason"} for entry in features["listed"]
    ]
    bulkheads = report["bulkheads"]
    if bulkheads is not None:
        bulkheads = {"total": bulkheads["total"], "saturated": bulkheads["saturated"]}
    errors = {k: v for k, v in report["errors"].items() if k != "by_type"}
    return {
        "generated_at": report["generated_at"],
        "level": report["level"],
        "health": {k: v for k, v in report["health"].items() if k != "reason"},
        "breakers": breakers,
        "features": features,
        "bulkheads": bulkheads,
        "errors": errors,
        "rates": report["rates"],
    }


def _breaker_entry(breaker: Any) -> dict[str, Any]:
    """One breaker's row: state, failures, seconds to the next probe, last error kind."""
    state = breaker.mode.value
    next_probe = breaker.retry_after if state == "open" else None
    return {
        "name": breaker.name,
        "state": state,
        "failures": breaker.failures,
        "threshold": breaker.config.failure_threshold,
        "next_probe_seconds": None if next_probe is None else round(next_probe, 1),
        "critical": breaker.critical,
        "last_error": _error_kind(getattr(breaker, "last_failure", None)),
    }


def _error_kind(found: object) -> str | None:
    """The kind (an exception's class name) of a breaker's last failure, when it keeps one;
    never its message, which may name hosts."""
    if found is None:
        return None
    for attribute in ("kind", "error_type", "type"):
        value = getattr(found, attribute, None)
        if isinstance(value, str):
            return value
        if isinstance(value, type):
            return value.__name__
    error = getattr(found, "error", found)
    if isinstance(error, BaseException):
        return type(error).__name__
    if isinstance(error, type):
        return error.__name__
    if isinstance(error, str):
        return error
    return None


def _registered_bulkheads() -> BulkheadSource:
    """Every ``@bulkhead`` compartment alive, as rows."""
    from .._bulkhead.decorator import bulkhead_figures

    return lambda: [{"name": name, **figures} for name, figures in bulkhead_figures().items()]


def _bulkhead_entry(found: object) -> dict[str, Any]:
    """One bulkhead as a row, from an object or a mapping with the fields named in
    ``BulkheadSource``."""

    def field(*names: str) -> Any:
        for name in names:
            value = found.get(name) if isinstance(found, Mapping) else getattr(found, name, None)
            if value is not None:
                return value
        return None

    limit = field("max_concurrent", "limit")
    active = field("active", "in_use", "running") or 0
    queue_limit = field("max_queue") or 0
    queued = field("queued", "waiting") or 0
    saturated = isinstance(limit, int) and limit > 0 and active >= limit
    return {
        "name": str(field("name")),
        "active": active,
        "max_concurrent": limit,
        "queued": queued,
        "max_queue": queue_limit,
        "saturated": saturated,
    }

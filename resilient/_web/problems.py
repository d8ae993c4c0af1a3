"""resilient's errors as HTTP answers: RFC 9457 problem details (``application/problem+json``).

``answer_for(error)`` says what a request that ended in ``error`` gets: an open circuit or
an unavailable feature is 503 with ``Retry-After`` when the error knows when to try again,
a timeout 504, a rate limit 429, a failed upstream request 502, and anything else 500.
The body never names breakers, hosts or reasons unless asked to (``expose=True``): the
correlation ID is what ties a public answer to the server's logs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Final

from .. import correlation, exceptions

__all__ = ["CONTENT_TYPE", "Answer", "answer_for", "internal_error"]

CONTENT_TYPE: Final = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, headers (``str`` pairs) and an encoded body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Kind:
    status: int
    slug: str
    title: str
    detail: str


# Most specific first: an error is answered by the first class in its MRO listed here.
# Classes another part of resilient may not define yet are looked up by name.
_KINDS: Final = {
    "HostUnavailableError": _Kind(
        503, "host-unavailable", "Service Unavailable", "an upstream service is unavailable"
    ),
    "HTTPTimeoutError": _Kind(
        504, "upstream-timeout", "Gateway Timeout", "an upstream service did not answer in time"
    ),
    "RateLimitedError": _Kind(
        429, "rate-limited", "Too Many Requests", "too many requests; slow down"
    ),
    "BulkheadFullError": _Kind(
        503, "bulkhead-full", "Service Unavailable", "the service is at capacity"
    ),
    "CircuitOpenError": _Kind(
        503, "circuit-open", "Service Unavailable", "a service this request needs is unavailable"
    ),
    "FeatureUnavailableError": _Kind(
        503, "feature-unavailable", "Service Unavailable", "this feature is unavailable for now"
    ),
    "TimeoutExceededError": _Kind(
        504, "timeout", "Gateway Timeout", "the request did not finish in time"
    ),
    "RequestFailedError": _Kind(
        502, "upstream-failed", "Bad Gateway", "an upstream service failed"
    ),
}
_INTERNAL: Final = _Kind(500, "internal", "Internal Server Error", "the server failed")


def _kind_of(error: BaseException) -> _Kind | None:
    for cls in type(error).__mro__:
        if cls.__module__ == exceptions.__name__:
            kind = _KINDS.get(cls.__name__)
            if kind is not None:
                return kind
    return None


def answer_for(
    error: BaseException, path: str, correlation_id: str, *, expose: bool = False
) -> Answer | None:
    """The answer for a request that ended in ``error`` (``correlation_id`` must be
    sendable: see ``correlation.is_sendable``); ``None`` if it is not resilient's to
    answer (any error not listed above: the app's own errors stay the app's).

    ``expose`` adds the error's message (breaker, feature or host names) as ``reason``.
    """
    kind = _kind_of(error)
    if kind is None:
        return None
    extra: dict[str, object] = {}
    headers: list[tuple[str, str]] = []
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and math.isfinite(retry_after) and retry_after >= 0:
        seconds = math.ceil(retry_after)
        headers.append(("Retry-After", str(seconds)))
        extra["retry_after"] = seconds
    if expose:
        extra["reason"] = str(error)
    return _answer(kind, path, correlation_id, extra, headers)


def internal_error(path: str, correlation_id: str) -> Answer:
    """The answer for an error nothing else handled: a 500 with no detail of the error."""
    return _answer(_INTERNAL, path, correlation_id, {}, [])


def _answer(
    kind: _Kind,
    path: str,
    correlation_id: str,
    extra: dict[str, object],
    headers: list[tuple[str, str]],
) -> Answer:
    payload = {
        "type": f"urn:resilient:problem:{kind.slug}",
        "title": kind.title,
        "status": kind.status,
        "detail": kind.detail,
        "instance": path,
        "correlation_id": correlation_id,
        **extra,
    }
    body = json.dumps(payload).encode()
    fields = (
        ("Content-Type", CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        (correlation.HEADER, correlation_id),
        *headers,
    )
    return Answer(kind.status, fields, body)

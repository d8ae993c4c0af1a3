"""The small parts of a request in flight: its host, its exchange, its body guard, its hints."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from . import _config, telemetry
from ._breaker import CircuitBreaker
from ._http_config import RequestConfig

__all__ = [
    "BoundedStream",
    "BudgetSpentError",
    "Exchange",
    "Host",
    "NotSent",
    "active",
    "parse_retry_after",
    "watch",
]

_state = _config.state


class Host:
    """One host a client talks to: its breaker (name = host) and its metric tags."""

    __slots__ = ("breaker", "name", "tags")

    def __init__(self, name: str, breaker: CircuitBreaker | None) -> None:
        self.name = name
        self.breaker = breaker
        self.tags = (("endpoint", name),)

    def __repr__(self) -> str:
        return f"<Host {self.name} breaker={self.breaker!r}>"


class Exchange:
    """One request in flight: what every attempt of it needs."""

    __slots__ = (
        "auth",
        "budget",
        "cid",
        "config",
        "deadline",
        "follow",
        "fresh",
        "host",
        "request",
    )

    def __init__(
        self,
        request: httpx.Request,
        cid: str,
        host: Host,
        config: RequestConfig,
        start: float,
        budget: float,
        auth: Any,
        follow: bool,
        fresh: bool,
    ) -> None:
        self.request = request
        self.cid = cid
        self.fresh = fresh
        """Whether ``cid`` was made for this request (no ID was current or given)."""
        self.host = host
        self.config = config
        self.budget = budget
        self.deadline = start + budget
        self.auth = auth
        self.follow = follow


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP-date; ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds == float("inf"):
        return None
    return max(0.0, seconds)


class NotSent(BaseException):
    """Carries an error raised in this process out through the host's breaker.

    A breaker counts nothing for a ``BaseException`` that is not an ``Exception``: it
    only frees the permit (a half-open probe's included), which is what a request that
    never reached the host deserves. The clients unwrap ``error`` as soon as the breaker
    is passed; a caller never sees this class.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


class BudgetSpentError(Exception):
    """Raised inside a response body read that went past the request's total budget."""


class BoundedStream(httpx.SyncByteStream):
    """A sync response body that stops asking for data once the total budget is spent.

    Each read is already bounded by the read timeout; this keeps a server that
    trickles bytes from stretching the request far past its deadline.
    """

    __slots__ = ("deadline", "stream")

    def __init__(self, stream: httpx.SyncByteStream, deadline: float) -> None:
        self.stream = stream
        self.deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        now, deadline = _state.now, self.deadline
        for chunk in self.stream:
            yield chunk
            if now() > deadline:
                raise BudgetSpentError

    def close(self) -> None:
        self.stream.close()


class _Active:
    """Requests in flight across every client (counted while metrics are on)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def change(self, by: int) -> int:
        with self._lock:
            self.count += by
            return self.count


active = _Active()
_config.on_reset(lambda: setattr(active, "count", 0))


_watched: set[str] = set()


def watch(breaker: CircuitBreaker) -> None:
    """List this host's breaker in the health report (critical while it is open)."""
    _watched.add(breaker.name)


def _circuit_states() -> dict[str, str]:
    from ._registry import CircuitBreakerRegistry

    registry = CircuitBreakerRegistry.instance
    return {name: registry.get(name).state.value for name in sorted(_watched) if name in registry}


telemetry.add_circuit_source(_circuit_states)
_config.on_reset(_watched.clear)

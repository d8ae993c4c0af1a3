"""The small parts of a request in flight: its host, its exchange, its body guard, its hints."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .. import telemetry
from .._breaker.breaker import CircuitBreaker
from .._runtime import config as _config
from .._runtime.types import Tags
from ._config import RequestConfig

__all__ = [
    "AsyncTransportShim",
    "BoundedStream",
    "BudgetSpentError",
    "Exchange",
    "Host",
    "TransportShim",
    "active",
    "parse_retry_after",
    "raised_by_transport",
    "shim_transports",
    "watch",
]

_state = _config.state


class Host:
    """One host a client talks to: its breaker (name = host) and its metric tags."""

    __slots__ = ("breaker", "name", "tags")

    def __init__(self, name: str, breaker: CircuitBreaker | None) -> None:
        self.name: str = name
        self.breaker: CircuitBreaker | None = breaker
        self.tags: Tags = (("endpoint", name),)

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
        self.request: httpx.Request = request
        self.cid: str = cid
        self.fresh: bool = fresh
        """Whether ``cid`` was made for this request (no ID was current or given)."""
        self.host: Host = host
        self.config: RequestConfig = config
        self.budget: float = budget
        self.deadline: float = start + budget
        self.auth: Any = auth
        self.follow: bool = follow


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


_fault: ContextVar[BaseException | None] = ContextVar("resilient_http_fault", default=None)


def raised_by_transport(error: BaseException) -> bool:
    """Whether ``error`` came out of a transport (a connection, a proxy library, a mock),
    rather than from httpx's client layer, an auth flow or an event hook of the caller.

    Only the error path pays: the transport shims remember the last error they let
    through, in the context of the request that met it.
    """
    if _fault.get() is error:
        _fault.set(None)  # drop the reference (and its traceback) at once
        return True
    return False


class TransportShim(httpx.BaseTransport):
    """Wraps a sync transport to tell its errors from the caller's (``raised_by_transport``)."""

    __slots__ = ("inner",)

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except Exception as error:
            if not isinstance(error, httpx.HTTPError):  # httpx's own errors tell by type
                _fault.set(error)
            raise

    def close(self) -> None:
        self.inner.close()


class AsyncTransportShim(httpx.AsyncBaseTransport):
    """The async twin of ``TransportShim``."""

    __slots__ = ("inner",)

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except Exception as error:
            if not isinstance(error, httpx.HTTPError):
                _fault.set(error)
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


def shim_transports(http: httpx.Client | httpx.AsyncClient) -> None:
    """Put a shim around every transport of ``http`` (the default one and each mount)."""
    shim: Any = AsyncTransportShim if isinstance(http, httpx.AsyncClient) else TransportShim
    http._transport = shim(http._transport)
    http._mounts = {
        pattern: None if transport is None else shim(transport)
        for pattern, transport in http._mounts.items()
    }


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
    from .._breaker.registry import CircuitBreakerRegistry

    registry = CircuitBreakerRegistry.instance
    return {name: registry.get(name).mode.value for name in sorted(_watched) if name in registry}


telemetry.add_circuit_source(_circuit_states)
_config.on_reset(_watched.clear)

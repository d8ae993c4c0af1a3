"""``resilient.asgi``: request budgets, correlation IDs and a health endpoint for any ASGI app.

Plain ASGI (no framework import), so the pieces work with Starlette, FastAPI, Quart or a
bare ASGI callable:

- ``RequestTimeoutMiddleware`` gives each request a budget (per route if you like),
  publishes it as the deadline ``resilient.remaining()`` reads, so a ``resilient.http``
  call made by the handler never outlives the request, and answers 504 with a JSON body
  carrying the correlation ID once the handler runs past it;
- ``CorrelationIdMiddleware`` takes ``X-Correlation-ID`` from the request (or makes one),
  makes it current for the handler and its logs, and returns it on the response;
- ``ProblemDetailsMiddleware`` (``install(app)`` for Starlette and FastAPI) answers the
  errors that end a request with RFC 9457 problem details: 503 with ``Retry-After`` for
  an open circuit, 504 for a timeout, a plain 500 for anything else, each with the
  correlation ID, and the connection stays usable;
- ``health_app`` (``HealthApp``) answers liveness and readiness probes with a public
  summary, and the detail to operators holding its token; ``HealthMiddleware`` serves it
  at ``/health`` in front of the app's routing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Final

from .. import correlation
from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime.logs import digest
from .._web.budgets import RouteBudgets
from ..exceptions import ConfigError, TimeoutExceededError
from ..metrics._names import TIMEOUTS
from ..presets import TimeoutPreset, Timeouts
from ..telemetry import count
from ..typing import Seconds
from ._health import (
    CACHE_SECONDS,
    ASGIApp,
    HealthApp,
    HealthMiddleware,
    Message,
    Receive,
    Scope,
    Send,
    health_app,
)
from ._problems import ProblemDetailsMiddleware, install
from ._status import StatusApp, status_app

__all__ = [
    "CACHE_SECONDS",
    "ASGIApp",
    "CorrelationIdMiddleware",
    "HealthApp",
    "HealthMiddleware",
    "ProblemDetailsMiddleware",
    "RequestTimeoutMiddleware",
    "StatusApp",
    "health_app",
    "install",
    "status_app",
]

_HEADER: Final = correlation.HEADER.lower().encode("latin-1")
_state = _config.state
_GRACE = 1.0
"""Seconds a cancelled handler gets to unwind before the middleware stops waiting for it."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_json(
    send: Send, status: int, payload: object, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestTimeoutMiddleware:
    """Answer 504 when a request's handler runs past its budget, and cancel the handler.

    ``timeout`` is the default budget in seconds (a ``Timeouts`` preset name, or
    ``None`` for no limit); ``routes`` maps a path to its own budget, the longest
    matching prefix winning (``{"/ai/generate": 45}`` also covers
    ``/ai/generate/stream``). Inside the handler ``resilient.remaining()`` gives the
    time left. A handler running in a worker thread (a sync FastAPI endpoint) cannot be
    interrupted: the client still gets its 504 on time while the thread finishes.
    Once a response has started, a late handler is cancelled and the error raised to
    the server, which closes the connection. Needs an asyncio server (uvicorn,
    hypercorn's asyncio worker); place ``CorrelationIdMiddleware`` outside it.
    """

    def __init__(
        self,
        app: ASGIApp,
        timeout: Seconds | TimeoutPreset | None = Timeouts.standard,
        routes: Mapping[str, Seconds | TimeoutPreset | None] | None = None,
        *,
        status_code: int = 504,
    ) -> None:
        if not callable(app):
            raise ConfigError("app", app, "an ASGI application")
        self.app = app
        self._budgets = RouteBudgets(timeout, routes)
        self.timeout: float | None = self._budgets.timeout
        self.routes: dict[str, float | None] = self._budgets.routes
        code: object = status_code
        if not isinstance(code, int) or not 400 <= code <= 599:
            raise ConfigError("status_code", status_code, "an HTTP error status (400-599)")
        self.status_code = status_code

    def budget_for(self, path: str) -> float | None:
        """The budget of ``path``: its longest matching route, else the default."""
        return self._budgets.budget_for(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        seconds = self.budget_for(path)
        if seconds is None:
            await self.app(scope, receive, send)
            return
        started = answered = False
        cid = correlation.current()
        if cid is None:
            given = _header(scope, _HEADER)
            if given is None or not correlation.is_valid(given):
                # Hand the ID to whatever runs inside (CorrelationIdMiddleware, handlers),
                # so the 504 and the handler's logs carry the same one.
                cid = correlation.new()
                headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() != _HEADER]
                scope = {**scope, "headers": [*headers, (_HEADER, cid.encode("latin-1"))]}
            else:
                cid = given

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 504 went out: what a late handler says goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # The handler runs as a task so the 504 goes out on time even when the handler
        # cannot be cancelled at once (anyio waits for a worker thread to finish).
        token = _deadline.enter(_state.now() + seconds)
        try:
            handler = asyncio.ensure_future(self.app(scope, receive, guarded))
        finally:
            _deadline.leave(token)
        try:
            done, _ = await asyncio.wait({handler}, timeout=seconds)
        except BaseException:
            handler.cancel()
            raise
        if done:
            handler.result()
            return
        handler.cancel()
        self._count(path)
        if started:
            await _settle(handler)
            raise TimeoutExceededError(f"{scope.get('method', 'HTTP')} {path}", seconds)
        answered = True
        payload = {
            "error": "request_timeout",
            "message": f"the request did not finish within {seconds:g}s",
            "timeout_seconds": seconds,
            "path": path,
            "correlation_id": cid,
        }
        await _send_json(send, self.status_code, payload, [(_HEADER, cid.encode("latin-1"))])
        await _settle(handler)

    @staticmethod
    def _count(path: str) -> None:
        count(TIMEOUTS, (("policy", f"asgi:{path}"),))  # seen by the health report too

    def __repr__(self) -> str:
        return f"<RequestTimeoutMiddleware timeout={self.timeout!r} routes={self.routes!r}>"


async def _settle(handler: asyncio.Future[None]) -> None:
    """Give a cancelled handler a moment to unwind; never let its error escape."""
    await asyncio.wait({handler}, timeout=_GRACE)
    if handler.done():
        _consume(handler)
    else:
        handler.add_done_callback(_consume)


def _consume(handler: asyncio.Future[None]) -> None:
    if handler.cancelled():
        return
    error = handler.exception()
    if error is not None:
        digest.report("handler failed after its timeout", "resilient.asgi", repr(error))


class CorrelationIdMiddleware:
    """Make each request's correlation ID current and send it back on the response.

    The ID comes from the request's ``X-Correlation-ID`` when it is well formed (see
    ``correlation.is_valid``) and ``trust_incoming`` is true, else a new one is made.
    Handlers read it with ``resilient.correlation.current()`` (or
    ``request.state.correlation_id`` in Starlette), and ``resilient.http`` calls made
    while handling the request forward it.
    """

    def __init__(self, app: ASGIApp, *, trust_incoming: bool = True) -> None:
        if not callable(app):
            raise ConfigError("app", app, "an ASGI application")
        self.app = app
        self.trust_incoming = trust_incoming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, _HEADER) if self.trust_incoming else None
        cid = given if given is not None and correlation.is_valid(given) else correlation.new()
        state = scope.get("state")
        if isinstance(state, dict):
            state["correlation_id"] = cid
        encoded = cid.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                if not any(key.lower() == _HEADER for key, _ in headers):
                    headers.append((_HEADER, encoded))
                    message = {**message, "headers": headers}
            await send(message)

        with correlation.use(cid):
            await self.app(scope, receive, send_with_id)

    def __repr__(self) -> str:
        return f"<CorrelationIdMiddleware trust_incoming={self.trust_incoming}>"

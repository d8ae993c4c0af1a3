"""Errors that end a request become answers: problem details, correlation ID, open connection.

``ProblemDetailsMiddleware`` turns resilient's errors escaping the app into RFC 9457
answers (503 with ``Retry-After`` for an open circuit, 504 for a timeout...: see
``resilient._web.problems``) and any other error into a plain 500, each carrying
``X-Correlation-ID``. The error never reaches the server, so it keeps the connection
open (uvicorn closes it when an app raises after answering); an error that is not
resilient's is logged with its traceback first, as the server would have done. An
error raised once the response has started is passed on: the answer cannot be changed.

``install(app)`` sets it up on a Starlette or FastAPI app.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import correlation
from .._runtime.validate import boolean
from .._web.problems import Answer, answer_for, internal_error
from ..exceptions import ConfigError
from ._health import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ProblemDetailsMiddleware", "install"]

logger = logging.getLogger("resilient")
_HEADER = correlation.HEADER.lower().encode("latin-1")


class ProblemDetailsMiddleware:
    """Answer the errors that escape ``app`` with problem details (see the module doc).

    ``expose`` adds each resilient error's message (breaker, feature or host names) to
    its body as ``reason``; off by default, since the public learns nothing from them.
    ``internal_errors`` (default on) also answers the app's own errors with a 500;
    off, they reach the server as before.
    """

    def __init__(self, app: ASGIApp, *, expose: bool = False, internal_errors: bool = True) -> None:
        if not callable(app):
            raise ConfigError("app", app, "an ASGI application")
        self.app = app
        self.expose: bool = boolean("expose", expose)
        self.internal_errors: bool = boolean("internal_errors", internal_errors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started:
                raise
            path: str = scope.get("path", "")
            cid = _correlation_id(scope)
            answer = answer_for(error, path, cid, expose=self.expose)
            if answer is None:
                if not self.internal_errors:
                    raise
                logger.error(
                    "resilient.asgi: %s %s failed (correlation id %s); answered 500",
                    scope.get("method", "HTTP"),
                    path,
                    cid,
                    exc_info=error,
                )
                answer = internal_error(path, cid)
            await _send(send, answer, head=scope.get("method") == "HEAD")

    def __repr__(self) -> str:
        return (
            f"<ProblemDetailsMiddleware expose={self.expose} "
            f"internal_errors={self.internal_errors}>"
        )


def _correlation_id(scope: Scope) -> str:
    """The request's correlation ID: the current one, the one a middleware stored on the
    request, a well-formed one the client sent, else a new one."""
    found = correlation.current()
    if found is not None and correlation.is_sendable(found):
        return found
    state = scope.get("state")
    stored = state.get("correlation_id") if isinstance(state, dict) else None
    if isinstance(stored, str) and correlation.is_sendable(stored):
        return stored
    for key, value in scope.get("headers") or ():
        if key.lower() == _HEADER:
            given = bytes(value).decode("latin-1")
            if correlation.is_valid(given):
                return given
    return correlation.new()


async def _send(send: Send, answer: Answer, *, head: bool) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


def install(app: Any, *, expose: bool = False, correlation_ids: bool = True) -> Any:
    """Set a Starlette or FastAPI ``app`` up to answer resilient's errors (returns ``app``).

    Adds ``ProblemDetailsMiddleware`` (with ``expose``) and, unless the app has one or
    ``correlation_ids`` is false, ``CorrelationIdMiddleware`` around it, so every
    answer carries ``X-Correlation-ID`` and handlers see the ID. Call it before the app
    serves its first request (Starlette builds its middleware stack then).
    """
    from . import CorrelationIdMiddleware

    add = getattr(app, "add_middleware", None)
    if not callable(add):
        raise ConfigError("app", app, "a Starlette or FastAPI application")
    expose = boolean("expose", expose)
    correlation_ids = boolean("correlation_ids", correlation_ids)
    present = {getattr(entry, "cls", None) for entry in getattr(app, "user_middleware", ())}
    add(ProblemDetailsMiddleware, expose=expose)
    if correlation_ids and CorrelationIdMiddleware not in present:
        add(CorrelationIdMiddleware)
    return app

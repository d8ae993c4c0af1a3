"""The WSGI middlewares (see the package's docstring)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Protocol, TypeAlias

from .. import correlation
from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from .._web.budgets import RouteBudgets
from .._web.problems import Answer, answer_for, internal_error
from ..asgi import HealthApp, StatusApp, health_app
from ..exceptions import ConfigError
from ..presets import TimeoutPreset, Timeouts
from ..typing import Seconds

__all__ = [
    "CorrelationIdMiddleware",
    "HealthMiddleware",
    "ProblemDetailsMiddleware",
    "RequestTimeoutMiddleware",
    "StartResponse",
    "StatusMiddleware",
    "WSGIApp",
    "correlation_id_of",
]

logger = logging.getLogger("resilient")

_ENVIRON_KEY: Final = "resilient.correlation_id"
"""Where ``CorrelationIdMiddleware`` leaves the request's ID in the WSGI environ."""
_HEADER_KEY: Final = "HTTP_" + correlation.HEADER.upper().replace("-", "_")

ExcInfo: TypeAlias = "tuple[type[BaseException], BaseException, TracebackType | None]"


class StartResponse(Protocol):
    """The ``start_response`` callable a WSGI server hands to the app."""

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = ...,
        /,
    ) -> Callable[[bytes], object]: ...


WSGIApp: TypeAlias = "Callable[[dict[str, Any], StartResponse], Iterable[bytes]]"


def _check_app(app: object) -> None:
    if not callable(app):
        raise ConfigError("app", app, "a WSGI application")


def correlation_id_of(environ: Mapping[str, Any]) -> str:
    """The request's correlation ID: the current one, the one ``CorrelationIdMiddleware``
    stored, a well-formed one the client sent, else a new one."""
    found = correlation.current()
    if found is not None and correlation.is_sendable(found):
        return found
    stored = environ.get(_ENVIRON_KEY)
    if isinstance(stored, str) and correlation.is_sendable(stored):
        return stored
    given = environ.get(_HEADER_KEY)
    if isinstance(given, str) and correlation.is_valid(given):
        return given
    return correlation.new()


class CorrelationIdMiddleware:
    """Make each request's correlation ID current and send it back on the response.

    The ID comes from the request's ``X-Correlation-ID`` when it is well formed and
    ``trust_incoming`` is true, else a new one is made. The app reads it with
    ``resilient.correlation.current()`` or from ``environ["resilient.correlation_id"]``.
    """

    def __init__(self, app: WSGIApp, *, trust_incoming: bool = True) -> None:
        _check_app(app)
        self.app = app
        self.trust_incoming: bool = _validate.boolean("trust_incoming", trust_incoming)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        given = environ.get(_HEADER_KEY) if self.trust_incoming else None
        valid = isinstance(given, str) and correlation.is_valid(given)
        cid: str = given if valid else correlation.new()  # type: ignore[assignment]
        environ[_ENVIRON_KEY] = cid

        def start_with_id(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            if not any(key.lower() == "x-correlation-id" for key, _ in headers):
                headers = [*headers, (correlation.HEADER, cid)]
            return start_response(status, headers, exc_info)

        with correlation.use(cid):
            return self.app(environ, start_with_id)

    def __repr__(self) -> str:
        return f"<wsgi.CorrelationIdMiddleware trust_incoming={self.trust_incoming}>"


class RequestTimeoutMiddleware:
    """Give each request a budget that ``resilient.remaining()`` and every resilient
    decorator and HTTP call inside the handler honour (cooperative: see the package's
    docstring).

    ``timeout`` is the default budget in seconds (a ``Timeouts`` preset name, or
    ``None`` for no limit); ``routes`` maps a path to its own budget, the longest
    matching prefix winning.
    """

    def __init__(
        self,
        app: WSGIApp,
        timeout: Seconds | TimeoutPreset | None = Timeouts.standard,
        routes: Mapping[str, Seconds | TimeoutPreset | None] | None = None,
    ) -> None:
        _check_app(app)
        self.app = app
        self._budgets = RouteBudgets(timeout, routes)
        self.timeout: float | None = self._budgets.timeout
        self.routes: dict[str, float | None] = self._budgets.routes

    def budget_for(self, path: str) -> float | None:
        """The budget of ``path``: its longest matching route, else the default."""
        return self._budgets.budget_for(path)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seconds = self.budget_for(environ.get("PATH_INFO", "") or "/")
        if seconds is None:
            return self.app(environ, start_response)
        token = _deadline.enter(_config.state.now() + seconds)
        try:
            return self.app(environ, start_response)
        finally:
            _deadline.leave(token)

    def __repr__(self) -> str:
        return f"<wsgi.RequestTimeoutMiddleware timeout={self.timeout!r} routes={self.routes!r}>"


class ProblemDetailsMiddleware:
    """Answer the errors that escape ``app`` (before it returns its body) with problem
    details: resilient's errors by kind, any other as a plain 500 logged with its
    traceback. ``expose`` adds each resilient error's message as ``reason``;
    ``internal_errors=False`` leaves the app's own errors to the server. An error raised
    while the body is produced is passed on: its status line may have gone out.
    """

    def __init__(self, app: WSGIApp, *, expose: bool = False, internal_errors: bool = True) -> None:
        _check_app(app)
        self.app = app
        self.expose: bool = _validate.boolean("expose", expose)
        self.internal_errors: bool = _validate.boolean("internal_errors", internal_errors)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except Exception as error:
            path = environ.get("PATH_INFO", "") or "/"
            cid = correlation_id_of(environ)
            answer = answer_for(error, path, cid, expose=self.expose)
            if answer is None:
                if not self.internal_errors:
                    raise
                logger.error(
                    "resilient.wsgi: %s %s failed (correlation id %s); answered 500",
                    environ.get("REQUEST_METHOD", "HTTP"),
                    path,
                    cid,
                    exc_info=error,
                )
                answer = internal_error(path, cid)
            return respond(start_response, answer, environ, sys.exc_info())

    def __repr__(self) -> str:
        return (
            f"<wsgi.ProblemDetailsMiddleware expose={self.expose} "
            f"internal_errors={self.internal_errors}>"
        )


def respond(
    start_response: StartResponse,
    answer: Answer,
    environ: Mapping[str, Any],
    exc_info: Any = None,
) -> list[bytes]:
    """Start ``answer`` (replacing headers the app started, when ``exc_info`` is given)."""
    start_response(_status_line(answer.status), list(answer.headers), exc_info)
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.body]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


class HealthMiddleware:
    """Answer the health paths (``/health``, ``/health/live``, ``/health/ready``) before
    the app, with ``health`` (a ``resilient.asgi.HealthApp``; default ``health_app``):
    the same answers, token and one-second cache as under ASGI, the report built on the
    request's own thread."""

    def __init__(self, app: WSGIApp, health: HealthApp | None = None) -> None:
        _check_app(app)
        given: object = health
        if given is not None and not isinstance(given, HealthApp):
            raise ConfigError("health", health, "a resilient.asgi.HealthApp or None")
        self.app = app
        self.health: HealthApp = health_app if health is None else health

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if self.health.probe({"path": path}, strict=True) is None:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        authorization = environ.get("HTTP_AUTHORIZATION")
        raw = authorization.encode("latin-1") if isinstance(authorization, str) else None
        status, body, extra = self.health.answer_sync(method, path, raw)
        headers = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Content-Length", str(len(body))),
            *((k.decode("latin-1"), v.decode("latin-1")) for k, v in extra),
        ]
        start_response(_status_line(status), headers)
        return [b""] if method == "HEAD" else [body]

    def __repr__(self) -> str:
        return f"<wsgi.HealthMiddleware {self.health!r}>"


_MAX_READ: Final = 65_536
"""Bytes of a request body read for the status page at most (its forms are far smaller)."""


class StatusMiddleware:
    """Serve a ``resilient.asgi.StatusApp`` (the live status page, its state and its
    operator actions) at its ``path`` (``/status`` by default) before the app, answered on
    the request's own thread; every other request goes to the app untouched."""

    def __init__(self, app: WSGIApp, status: StatusApp) -> None:
        _check_app(app)
        given: object = status
        if not isinstance(given, StatusApp):
            raise ConfigError("status", status, "a resilient.asgi.StatusApp")
        self.app = app
        self.status = status

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        own = self.status.path
        if own != "/" and path != own and not path.startswith(own + "/"):
            return self.app(environ, start_response)
        headers = {
            key[5:].lower().replace("_", "-"): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.lower().replace("_", "-")] = environ[key]
        method = environ.get("REQUEST_METHOD", "GET")
        body = b""
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(min(max(length, 0), _MAX_READ))
        root = environ.get("SCRIPT_NAME", "")
        status, fields, answer = self.status.answer_sync(
            method, root + path, headers, body, environ.get("REMOTE_ADDR"), root
        )
        start_response(_status_line(status), [*fields, ("content-length", str(len(answer)))])
        return [b""] if method == "HEAD" else [answer]

    def __repr__(self) -> str:
        return f"<wsgi.StatusMiddleware {self.status!r}>"

"""``install(flask_app)``: problem details, correlation IDs, budgets and health for Flask.

Flask turns every error a view raises into its own HTML 500 page before a WSGI
middleware could see it, so the errors are answered by error handlers registered on
the app, and the rest by middlewares around ``app.wsgi_app``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._runtime import validate as _validate
from .._web.problems import answer_for, internal_error
from ..asgi import HealthApp, StatusApp
from ..exceptions import ConfigError, ResilienceError
from ..presets import TimeoutPreset
from ..typing import Seconds
from ._middleware import (
    CorrelationIdMiddleware,
    HealthMiddleware,
    RequestTimeoutMiddleware,
    StatusMiddleware,
    correlation_id_of,
)

__all__ = ["install"]


def install(
    app: Any,
    *,
    expose: bool = False,
    timeout: Seconds | TimeoutPreset | None = None,
    routes: Mapping[str, Seconds | TimeoutPreset | None] | None = None,
    health: HealthApp | bool = False,
    status: StatusApp | None = None,
) -> Any:
    """Set a Flask ``app`` up to answer resilient's errors with problem details (returns
    ``app``).

    Every answer carries ``X-Correlation-ID`` (and views see the ID); resilient's errors
    get their problem answers (``expose`` adds their messages) and any other error a
    problem 500 after Flask has logged it. ``timeout``/``routes`` give requests a
    (cooperative) budget, as ``RequestTimeoutMiddleware``; ``health`` serves
    ``/health`` (``True`` for the default ``resilient.asgi.health_app``, or a
    ``HealthApp``); ``status`` serves a ``resilient.asgi.StatusApp`` (the live status
    page) at its path.
    """
    from flask import Flask, request

    if not isinstance(app, Flask):
        raise ConfigError("app", app, "a Flask application")
    expose = _validate.boolean("expose", expose)
    health_given: object = health
    if not isinstance(health_given, bool | HealthApp):
        raise ConfigError("health", health, "True, False or a resilient.asgi.HealthApp")

    def resilient_error(error: ResilienceError) -> Any:
        answer = answer_for(error, request.path, correlation_id_of(request.environ), expose=expose)
        if answer is None:
            raise error  # not one resilient answers (a ConfigError is a bug): Flask's 500
        return answer.body, answer.status, list(answer.headers)

    def server_error(error: Exception) -> Any:
        answer = internal_error(request.path, correlation_id_of(request.environ))
        return answer.body, answer.status, list(answer.headers)

    app.register_error_handler(ResilienceError, resilient_error)
    app.register_error_handler(500, server_error)
    wsgi: Any = app.wsgi_app
    if timeout is not None or routes is not None:
        wsgi = RequestTimeoutMiddleware(wsgi, timeout, routes)
    if health is not False:
        wsgi = HealthMiddleware(wsgi, None if health is True else health)
    if status is not None:
        wsgi = StatusMiddleware(wsgi, status)
    app.wsgi_app = CorrelationIdMiddleware(wsgi)  # type: ignore[method-assign, assignment]
    return app

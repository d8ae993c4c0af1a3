"""``resilient.wsgi``: request budgets, correlation IDs, problem details and health for WSGI apps.

The WSGI twins of ``resilient.asgi``, for Flask, Django or any WSGI callable under
gunicorn, uWSGI, waitress or Werkzeug:

- ``CorrelationIdMiddleware`` takes ``X-Correlation-ID`` from the request (or makes one),
  makes it current while the app handles the request and returns it on the response;
- ``RequestTimeoutMiddleware`` publishes each request's budget as the deadline
  ``resilient.remaining()`` reads, so resilient timeouts, retries and HTTP calls made by
  the handler end by it. A WSGI worker thread cannot be interrupted, so the budget is
  cooperative: a handler that overruns it without asking answers when it finishes (pair
  it with the server's own hard limit, such as gunicorn's ``--timeout``);
- ``ProblemDetailsMiddleware`` answers the errors that escape the app with RFC 9457
  problem details (503 with ``Retry-After`` for an open circuit, 504 for a timeout, a
  plain 500 for anything else), each with the correlation ID;
- ``HealthMiddleware`` serves ``resilient.asgi.HealthApp``'s liveness and readiness
  answers at ``/health``;
- ``StatusMiddleware`` serves ``resilient.asgi.StatusApp``'s live status page, its state
  and its operator actions at ``/status``;
- ``install(flask_app)`` sets all of that up on a Flask app, whose own error handling
  would otherwise turn every error into its HTML 500 page.
"""

from ._flask import install
from ._middleware import (
    CorrelationIdMiddleware,
    HealthMiddleware,
    ProblemDetailsMiddleware,
    RequestTimeoutMiddleware,
    StartResponse,
    StatusMiddleware,
    WSGIApp,
)

__all__ = [
    "CorrelationIdMiddleware",
    "HealthMiddleware",
    "ProblemDetailsMiddleware",
    "RequestTimeoutMiddleware",
    "StartResponse",
    "StatusMiddleware",
    "WSGIApp",
    "install",
]

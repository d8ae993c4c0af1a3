"""Flask under a real WSGI server (Werkzeug's threaded server) set up by
``resilient.wsgi.install``: problem details, correlation IDs, budgets and health."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_servers import WSGIServer

import resilient as rs
from resilient.asgi import HealthApp
from resilient.exceptions import (
    CircuitOpenError,
    ConfigError,
    FeatureUnavailableError,
    TimeoutExceededError,
)
from resilient.wsgi import install

pytest.importorskip("flask")

from flask import Flask, request

pytestmark = pytest.mark.realtime

TOKEN = "operator-token-0123456789"


def make_app() -> Flask:
    app = Flask("resilient-test")

    @app.route("/open")
    def opened() -> str:
        raise CircuitOpenError("payments-db", 4.5)

    @app.route("/timeout")
    def timed_out() -> str:
        raise TimeoutExceededError("lessons.load", 2.0)

    @app.route("/feature")
    def feature() -> str:
        raise FeatureUnavailableError("ai-tutor", "breaker open")

    @app.route("/config")
    def config() -> str:
        raise ConfigError("attempts", 0, "an integer >= 1")

    @app.route("/bug")
    def bug() -> str:
        raise ZeroDivisionError("division by zero")

    @app.route("/remaining")
    @app.route("/ai/generate")
    def remaining() -> dict[str, Any]:
        return {"remaining": rs.remaining(), "cid": rs.correlation.current()}

    @app.route("/environ")
    def environ() -> dict[str, Any]:
        return {"cid": request.environ["resilient.correlation_id"]}

    return install(
        app,
        timeout=10,
        routes={"/ai/generate": 45},
        health=HealthApp(token=TOKEN),
    )


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with WSGIServer(make_app()) as served, httpx.Client(base_url=served.url, timeout=5) as client:
        yield client


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert body["status"] == response.status_code
    return body


@pytest.mark.parametrize(
    ("path", "status", "retry_after"),
    [("/open", 503, "5"), ("/timeout", 504, None), ("/feature", 503, None)],
)
def test_resilient_errors_become_problem_details(
    http: httpx.Client, path: str, status: int, retry_after: str | None
) -> None:
    """A view's open circuit, timeout or unavailable feature answers its status as
    problem details, with ``Retry-After`` when the error knows it."""
    response = http.get(path)
    assert response.status_code == status
    body = problem(response)
    assert body["instance"] == path
    assert response.headers.get("retry-after") == retry_after
    assert "payments-db" not in response.text


def test_the_apps_own_errors_are_a_problem_500_logged_by_flask(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (and a ConfigError, which is one) answers a problem 500 with the correlation
    ID instead of Flask's HTML page; Flask's log keeps the traceback."""
    with caplog.at_level(logging.ERROR):
        for path in ("/bug", "/config"):
            response = http.get(path, headers={"X-Correlation-ID": "bug-9"})
            assert response.status_code == 500
            assert problem(response)["correlation_id"] == "bug-9"
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, ZeroDivisionError) for e in errors)
    assert any(isinstance(e, ConfigError) for e in errors)


def test_every_answer_carries_the_correlation_id_views_see(http: httpx.Client) -> None:
    """Successes and Flask's own 404 carry ``X-Correlation-ID``; the view sees the same ID
    through ``correlation.current()`` and the environ."""
    response = http.get("/remaining", headers={"X-Correlation-ID": "req-1"})
    assert response.headers["x-correlation-id"] == "req-1"
    assert response.json()["cid"] == "req-1"
    seen = http.get("/environ")
    assert seen.json()["cid"] == seen.headers["x-correlation-id"]
    missing = http.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["x-correlation-id"]


def test_views_see_their_routes_budget(http: httpx.Client) -> None:
    """``resilient.remaining()`` inside a view is the request's budget: the default 10 s,
    45 s on its own route."""
    assert 9 < http.get("/remaining").json()["remaining"] <= 10
    assert 44 < http.get("/ai/generate").json()["remaining"] <= 45


def test_health_is_served_with_its_token(http: httpx.Client) -> None:
    """``/health`` answers readiness publicly; the token opens the detail; a wrong token
    gets 401; ``/health/live`` is liveness."""
    public = http.get("/health")
    assert public.status_code == 200
    assert public.json()["status"] == "ready"
    assert "circuits" not in public.json()
    detail = http.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "circuits" in detail.json()
    assert http.get("/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http.get("/health/live").json() == {"status": "alive"}
    assert http.post("/health").status_code == 405


def test_install_refuses_what_it_cannot_set_up() -> None:
    """Not a Flask app, a non-boolean ``expose`` or a wrong ``health`` is a ConfigError."""
    with pytest.raises(ConfigError, match="app"):
        install(object())
    with pytest.raises(ConfigError, match="expose"):
        install(Flask("x"), expose="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="health"):
        install(Flask("x"), health="yes")  # type: ignore[arg-type]

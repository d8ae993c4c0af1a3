"""Errors that end a request, under a real uvicorn: problem details, the correlation ID on
every answer, ``Retry-After`` where the error knows it, and a connection that stays open."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_servers import TLS, UvicornServer

import resilient as rs
from resilient.asgi import ProblemDetailsMiddleware, install
from resilient.exceptions import (
    CircuitOpenError,
    ConfigError,
    ConnectionFailedError,
    FeatureUnavailableError,
    HTTPTimeoutError,
    TimeoutExceededError,
)

pytest.importorskip("fastapi")

from fastapi import FastAPI, Request

pytestmark = pytest.mark.realtime

ERRORS: dict[str, BaseException] = {
    "open": CircuitOpenError("payments-db", 12.2),
    "open-until-reset": CircuitOpenError("payments-db", None),
    "timeout": TimeoutExceededError("lessons.load", 2.0),
    "feature": FeatureUnavailableError("ai-tutor", "breaker ai-generate is open"),
    "upstream": ConnectionFailedError(
        "connection refused", method="GET", url="http://db.internal/x", correlation_id="c"
    ),
    "upstream-timeout": HTTPTimeoutError(
        "read timed out",
        method="GET",
        url="http://db.internal/x",
        correlation_id="c",
        phase="read",
        seconds=2.0,
    ),
    "bug": ZeroDivisionError("division by zero"),
}


def make_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/port")
    async def port(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"port": request.client.port, "cid": rs.correlation.current()}

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise ERRORS[kind]

    @app.get("/slow")
    @rs.timeout(0.05)
    async def slow() -> None:
        await asyncio.Event().wait()

    install(app, **options)
    return app


@pytest.fixture(scope="module")
def site() -> Iterator[UvicornServer]:
    with UvicornServer(make_app()) as running:
        yield running


@pytest.fixture
def http(site: UvicornServer) -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=site.url, verify=TLS, timeout=5, limits=limits) as client:
        yield client


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert body["status"] == response.status_code
    return body


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [
        ("open", 503, "13"),
        ("open-until-reset", 503, None),
        ("timeout", 504, None),
        ("feature", 503, None),
        ("upstream", 502, None),
        ("upstream-timeout", 504, None),
        ("bug", 500, None),
    ],
)
def test_each_error_gets_its_status_and_the_connection_stays_open(
    http: httpx.Client, kind: str, status: int, retry_after: str | None
) -> None:
    """Each error kind answers its status as problem details (``Retry-After`` rounded up
    when the error knows when to try again), and the next request reuses the connection."""
    before = http.get("/port").json()["port"]
    response = http.get(f"/fail/{kind}")
    assert response.status_code == status
    body = problem(response)
    assert body["instance"] == f"/fail/{kind}"
    assert body["type"].startswith("urn:resilient:problem:")
    assert response.headers.get("retry-after") == retry_after
    assert http.get("/port").json()["port"] == before


def test_the_public_body_names_no_breaker_feature_or_host(http: httpx.Client) -> None:
    """Without ``expose`` the body says what kind of failure it was, never which
    breaker, feature or host."""
    for kind in ERRORS:
        text = http.get(f"/fail/{kind}").text
        for secret in ("payments-db", "ai-tutor", "db.internal", "division"):
            assert secret not in text, (kind, secret)


def test_the_clients_correlation_id_comes_back_in_header_and_body(http: httpx.Client) -> None:
    """A well-formed ``X-Correlation-ID`` sent by the client is the one the problem
    carries, so a support request can be matched with the server's logs."""
    response = http.get("/fail/open", headers={"X-Correlation-ID": "req-42"})
    assert response.headers["x-correlation-id"] == "req-42"
    assert problem(response)["correlation_id"] == "req-42"


def test_a_500_is_logged_with_its_traceback_and_correlation_id(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The app's own error is not lost: the log has its traceback and the request's ID."""
    with caplog.at_level(logging.ERROR, logger="resilient"):
        response = http.get("/fail/bug", headers={"X-Correlation-ID": "bug-7"})
    assert response.status_code == 500
    records = [r for r in caplog.records if r.name == "resilient" and "bug-7" in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ZeroDivisionError)


def test_resilient_errors_are_not_logged_as_failures(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """An open circuit is an expected answer, not a server failure: nothing is logged."""
    with caplog.at_level(logging.ERROR, logger="resilient"):
        http.get("/fail/open")
    assert not [r for r in caplog.records if r.name == "resilient"]


def test_a_timeout_decorated_endpoint_answers_504_in_time(http: httpx.Client) -> None:
    """The documented order (route decorator on top) works: ``@timeout`` under ``@app.get``
    cuts the endpoint at its budget and the client gets a 504 problem."""
    response = http.get("/slow")
    assert response.status_code == 504
    assert problem(response)["type"] == "urn:resilient:problem:timeout"


def test_handlers_see_the_correlation_id_install_added(http: httpx.Client) -> None:
    """``install`` adds ``CorrelationIdMiddleware``: handlers see the same ID the answer
    carries."""
    response = http.get("/port", headers={"X-Correlation-ID": "seen-1"})
    assert response.json()["cid"] == "seen-1"
    assert response.headers["x-correlation-id"] == "seen-1"


def test_expose_adds_the_errors_message() -> None:
    """``install(app, expose=True)`` puts the error's message in ``reason``."""
    app = make_app(expose=True)
    with UvicornServer(app) as running, httpx.Client(base_url=running.url) as client:
        body = problem(client.get("/fail/open"))
    assert "payments-db" in body["reason"]
    assert body["retry_after"] == 13


# --- the middleware alone, as plain ASGI -------------------------------------------------


def run(app: Any, method: str = "GET") -> tuple[list[dict[str, Any]], BaseException | None]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/x", "headers": []}
    try:
        asyncio.run(app(scope, receive, send))
    except BaseException as error:
        return sent, error
    return sent, None


def test_an_error_after_the_response_started_is_passed_on() -> None:
    """Once the status line went out the answer cannot change: the error reaches the
    server (which closes the connection) untouched."""
    failure = RuntimeError("mid-body")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise failure

    sent, error = run(ProblemDetailsMiddleware(app))
    assert error is failure
    assert len(sent) == 1


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_interrupts_and_cancellation_are_never_answered(interrupt: type[BaseException]) -> None:
    """KeyboardInterrupt, SystemExit and cancellation pass through; nothing is sent."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise interrupt()

    sent, error = run(ProblemDetailsMiddleware(app))
    assert isinstance(error, interrupt)
    assert sent == []


def test_internal_errors_off_leaves_the_apps_errors_to_the_server() -> None:
    """``internal_errors=False``: the app's own error propagates, resilient's are answered."""
    bug = ValueError("bug")

    async def buggy(scope: Any, receive: Any, send: Any) -> None:
        raise bug

    async def opened(scope: Any, receive: Any, send: Any) -> None:
        raise CircuitOpenError("x", 1.0)

    assert run(ProblemDetailsMiddleware(buggy, internal_errors=False))[1] is bug
    sent, error = run(ProblemDetailsMiddleware(opened, internal_errors=False))
    assert error is None
    assert sent[0]["status"] == 503


def test_head_gets_the_status_and_headers_without_a_body() -> None:
    """A HEAD request that fails gets the problem's status and headers, and no body."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise TimeoutExceededError("x", 1.0)

    sent, _ = run(ProblemDetailsMiddleware(app), method="HEAD")
    assert sent[0]["status"] == 504
    assert sent[1]["body"] == b""
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert int(headers[b"content-length"]) > 0  # the GET body's length, as HEAD promises


def test_bad_arguments_are_refused_at_construction() -> None:
    """A non-app, or a non-boolean option, is a ``ConfigError`` naming the parameter."""
    with pytest.raises(ConfigError, match="app"):
        ProblemDetailsMiddleware(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="expose"):
        ProblemDetailsMiddleware(make_app(), expose="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="app"):
        install(object())

"""The WSGI middlewares around a plain WSGI app: problem details for errors that escape
it, correlation IDs, cooperative budgets and their refusals of bad settings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from http_servers import WSGIServer

import resilient as rs
from resilient.exceptions import CircuitOpenError, ConfigError
from resilient.testing import FakeClock
from resilient.wsgi import (
    CorrelationIdMiddleware,
    HealthMiddleware,
    ProblemDetailsMiddleware,
    RequestTimeoutMiddleware,
)

Started = list[tuple[str, list[tuple[str, str]], Any]]


def call(
    app: Any, path: str = "/x", method: str = "GET", **headers: str
) -> tuple[Started, bytes, BaseException | None]:
    started: Started = []

    def start_response(status: str, fields: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, fields, exc_info))
        return lambda data: None

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, **headers}
    try:
        body = b"".join(app(environ, start_response))
    except BaseException as error:
        return started, b"", error
    return started, body, None


def opened(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    raise CircuitOpenError("payments-db", 0.2)


def test_an_open_circuit_is_a_503_with_retry_after_and_the_requests_id() -> None:
    """Outside a correlation middleware the problem still carries the ID the client
    sent, in header and body; ``Retry-After`` is rounded up to whole seconds."""
    started, body, error = call(ProblemDetailsMiddleware(opened), HTTP_X_CORRELATION_ID="abc-1")
    assert error is None
    [(status, fields, exc_info)] = started
    assert status == "503 Service Unavailable"
    assert ("Retry-After", "1") in fields
    assert ("X-Correlation-ID", "abc-1") in fields
    assert exc_info is not None
    assert isinstance(exc_info[1], CircuitOpenError)
    assert b'"correlation_id": "abc-1"' in body


def test_a_start_response_made_before_the_error_is_replaced_with_exc_info() -> None:
    """An app that started its answer then raised: the problem's ``start_response`` call
    passes ``exc_info``, as PEP 3333 requires to replace headers not yet sent."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        raise CircuitOpenError("x", None)

    started, _, error = call(ProblemDetailsMiddleware(app))
    assert error is None
    assert started[1][0].startswith("503")
    assert started[1][2] is not None


def test_an_error_while_the_body_is_produced_is_passed_on() -> None:
    """Once the app returned its body the status may be on the wire: an error raised
    while iterating it reaches the server untouched."""
    failure = RuntimeError("mid-body")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"part"
        raise failure

    _, _, error = call(ProblemDetailsMiddleware(app))
    assert error is failure


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_interrupts_are_never_answered(interrupt: type[BaseException]) -> None:
    """KeyboardInterrupt and SystemExit pass through without an answer."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise interrupt()

    started, _, error = call(ProblemDetailsMiddleware(app))
    assert isinstance(error, interrupt)
    assert started == []


def test_head_gets_no_body() -> None:
    """A failing HEAD request gets the problem's status and headers only."""
    started, body, _ = call(ProblemDetailsMiddleware(opened), method="HEAD")
    assert started[0][0].startswith("503")
    assert body == b""


def test_correlation_ids_are_kept_when_well_formed_and_replaced_otherwise() -> None:
    """A well-formed incoming ID is current in the app and echoed; a malformed one (or
    any, with ``trust_incoming=False``) is replaced by a fresh one."""
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(rs.correlation.current())
        start_response("200 OK", [])
        return [b"ok"]

    started, _, _ = call(CorrelationIdMiddleware(app), HTTP_X_CORRELATION_ID="good-1")
    assert seen[-1] == "good-1"
    assert ("X-Correlation-ID", "good-1") in started[0][1]
    started, _, _ = call(CorrelationIdMiddleware(app), HTTP_X_CORRELATION_ID="bad id\n")
    assert seen[-1] not in (None, "bad id\n")
    untrusting = CorrelationIdMiddleware(app, trust_incoming=False)
    call(untrusting, HTTP_X_CORRELATION_ID="good-1")
    assert seen[-1] != "good-1"
    assert rs.correlation.current() is None  # the ID does not outlive the request


def test_the_budget_is_the_deadline_inside_and_gone_after(fake_clock: FakeClock) -> None:
    """Inside the app ``remaining()`` counts down the route's budget on the configured
    clock; after the request no deadline is left behind."""
    seen: list[float | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        fake_clock.advance(3)
        seen.append(rs.remaining())
        start_response("200 OK", [])
        return [b"ok"]

    middleware = RequestTimeoutMiddleware(app, 10, routes={"/ai": 45, "/open": None})
    call(middleware, "/x")
    call(middleware, "/ai/generate")
    call(middleware, "/open/x")
    assert seen == [7, 42, None]
    assert rs.remaining() is None


def test_a_retry_inside_gives_up_at_the_requests_budget(fake_clock: FakeClock) -> None:
    """A ``@retry`` in the handler stops when its next wait would cross the request's
    budget, and the problem middleware answers the error it gave up with."""
    attempts: list[float] = []

    @rs.retry(attempts=10, initial_delay=1, multiplier=1, jitter=0)
    def flaky() -> None:
        attempts.append(fake_clock.monotonic())
        raise ConnectionError("down")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        flaky()
        return [b"never"]

    stack = ProblemDetailsMiddleware(RequestTimeoutMiddleware(app, 2.5))
    started, _body, error = call(stack)
    assert len(attempts) == 3  # at 0, 1 and 2 s: a wait to 3 s would cross 2.5 s
    assert started[0][0].startswith("500")
    assert error is None


def test_health_middleware_answers_only_its_paths() -> None:
    """``/health/live`` is answered by the middleware, other paths reach the app."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b"app"]

    middleware = HealthMiddleware(app)
    assert call(middleware, "/health/live")[1] == b'{"status": "alive"}'
    assert call(middleware, "/lessons")[1] == b"app"


@pytest.mark.realtime
def test_under_a_real_server_every_answer_has_the_id() -> None:
    """Through a real WSGI server: the problem answer and a success both carry the ID."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/open":
            raise CircuitOpenError("x", 1.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    stack = CorrelationIdMiddleware(ProblemDetailsMiddleware(app))
    with WSGIServer(stack) as served, httpx.Client(base_url=served.url, timeout=5) as client:
        failed = client.get("/open")
        fine = client.get("/fine")
    assert failed.status_code == 503
    assert failed.json()["correlation_id"] == failed.headers["x-correlation-id"]
    assert fine.text == "ok"
    assert fine.headers["x-correlation-id"]


def test_bad_settings_are_refused_naming_the_parameter() -> None:
    """Each middleware refuses a non-app and bad options with a ConfigError."""
    for middleware in (
        CorrelationIdMiddleware,
        ProblemDetailsMiddleware,
        RequestTimeoutMiddleware,
        HealthMiddleware,
    ):
        with pytest.raises(ConfigError, match="app"):
            middleware(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout"):
        RequestTimeoutMiddleware(opened, -1)
    with pytest.raises(ConfigError, match="routes"):
        RequestTimeoutMiddleware(opened, 1, routes={"no-slash": 1})
    with pytest.raises(ConfigError, match="trust_incoming"):
        CorrelationIdMiddleware(opened, trust_incoming=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="health"):
        HealthMiddleware(opened, health="x")  # type: ignore[arg-type]

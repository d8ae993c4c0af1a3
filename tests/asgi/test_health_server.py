"""The health endpoint under a real uvicorn server: the README's setup answers ``/health``
itself (no redirect), HEAD has no body, and a mount serves the probes below it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_servers import TLS, UvicornServer

from resilient._breaker.registry import CircuitBreakerRegistry
from resilient.asgi import (
    CorrelationIdMiddleware,
    HealthApp,
    HealthMiddleware,
    RequestTimeoutMiddleware,
    health_app,
)
from resilient.asgi._health import CACHE_SECONDS
from resilient.testing import FakeClock

pytest.importorskip("fastapi")

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

pytestmark = pytest.mark.realtime

CRITICAL = HealthApp(critical=["payments-db"])


def readme_app() -> FastAPI:
    """The app as the README sets it up."""
    app = FastAPI()

    @app.get("/lessons/{lesson_id}")
    async def lesson(lesson_id: int) -> dict[str, Any]:
        return {"id": lesson_id}

    app.add_middleware(RequestTimeoutMiddleware, timeout=10, routes={"/ai/generate": 45})
    app.add_middleware(HealthMiddleware, health=CRITICAL)
    app.add_middleware(CorrelationIdMiddleware)
    return app


@pytest.fixture(scope="module")
def site() -> Iterator[UvicornServer]:
    with UvicornServer(readme_app()) as running:
        yield running


@pytest.fixture
def http(site: UvicornServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, verify=TLS, timeout=5, follow_redirects=False) as client:
        yield client


def test_the_documented_setup_answers_health_itself(http: httpx.Client) -> None:
    """``/health`` answers 200 with no redirect, as do ``/live`` and ``/ready``; other
    routes reach the app."""
    for path in ("/health", "/health/", "/health/ready", "/health/live"):
        response = http.get(path)
        assert response.status_code == 200, path
        assert "location" not in response.headers
    assert http.get("/health").json()["status"] == "ready"
    assert http.get("/health").headers["x-correlation-id"]
    assert http.get("/lessons/7").json() == {"id": 7}
    assert http.get("/healthz").status_code == 404


def test_the_documented_setup_answers_503_when_a_critical_breaker_opens(
    http: httpx.Client,
) -> None:
    """An open critical breaker: ``/health`` 503, ``/health/live`` still 200."""
    CircuitBreakerRegistry.instance.get_or_create("payments-db").force_open()
    response = http.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert http.get("/health/live").status_code == 200


def raw_head(port: int, path: str) -> bytes:
    """What the server sends for ``HEAD path`` on a fresh connection, up to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_head_answers_without_a_body(
    site: UvicornServer, http: httpx.Client, fake_clock: FakeClock
) -> None:
    """HEAD gets the readiness status and headers, and nothing after them."""
    response = http.head("/health")
    assert response.status_code == 200
    assert response.content == b""
    wire = raw_head(site.port, "/health")
    assert wire.startswith(b"HTTP/1.1 200")
    assert wire.endswith(b"\r\n\r\n")
    CircuitBreakerRegistry.instance.get_or_create("payments-db").force_open()
    fake_clock.advance(CACHE_SECONDS)  # the report built for the first request answers 1 s
    assert http.head("/health").status_code == 503


def test_a_mounted_health_app_serves_its_probes() -> None:
    """Mounted with Starlette, ``/health/``, ``/health/live`` and ``/health/ready`` answer."""
    app = Starlette(routes=[Mount("/health", health_app)])
    with UvicornServer(app) as mounted, httpx.Client(base_url=mounted.url, verify=TLS) as http:
        for path in ("/health/", "/health/live", "/health/ready"):
            assert http.get(path, follow_redirects=False).status_code == 200, path
        assert http.get("/health/nope").status_code == 404


def test_over_the_wire_the_public_answer_is_a_summary_and_the_token_opens_the_detail() -> None:
    """Through uvicorn: no names or hosts without the token, the detail with it, a wrong
    bearer token refused, another scheme (a proxy's Basic) given the public summary."""
    token = "s3cret-token-for-ops-0123"
    app = FastAPI()
    app.add_middleware(HealthMiddleware, health=HealthApp(critical=["wire-payments"], token=token))
    CircuitBreakerRegistry.instance.get_or_create("wire-payments").force_open()
    with UvicornServer(app) as running, httpx.Client(base_url=running.url, verify=TLS) as http:
        public = http.get("/health")
        assert public.status_code == 503
        assert "wire-payments" not in public.text
        detail = http.get("/health", headers={"Authorization": f"Bearer {token}"})
        assert detail.status_code == 503
        assert "wire-payments" in detail.text
        wrong = http.get("/health", headers={"Authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 401
        basic = http.get("/health", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 503
        assert "wire-payments" not in basic.text

"""``resilient.asgi`` under uvicorn with Starlette and FastAPI apps: budgets, IDs, health."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_servers import TLS, Answer, ScriptedServer, UvicornServer

import resilient
from resilient import correlation, fallback, telemetry
from resilient.asgi import CorrelationIdMiddleware, HealthApp, RequestTimeoutMiddleware
from resilient.exceptions import ConfigError
from resilient.http import Client, ResponseStatusError

starlette = pytest.importorskip("starlette")
fastapi = pytest.importorskip("fastapi")

from fastapi import FastAPI  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

pytestmark = pytest.mark.realtime

BUDGET = 0.15
"""The default request budget of the test apps: short, so the suite stays fast."""

TOKEN = "operator-token-for-tests"
"""The health detail token of the test apps."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}

cancelled = threading.Event()


async def fast(request: Request) -> JSONResponse:
    return JSONResponse(
        {"correlation_id": correlation.current(), "state": request.state.correlation_id}
    )


async def slow(request: Request) -> JSONResponse:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        cancelled.set()
        raise
    return JSONResponse({"finished": True})  # pragma: no cover - always cancelled


def sync_slow(request: Request) -> JSONResponse:
    time.sleep(0.6)  # a worker thread: cannot be interrupted
    return JSONResponse({"finished": True})


async def generate(request: Request) -> JSONResponse:
    await asyncio.sleep(0.3)  # longer than the default budget, within the route's
    return JSONResponse({"text": "Photosynthesis turns light into sugar"})


async def budget(request: Request) -> JSONResponse:
    return JSONResponse({"remaining": resilient.remaining()})


async def stream(request: Request) -> StreamingResponse:
    async def body() -> Any:
        yield b"first chunk\n"
        await asyncio.sleep(5)
        yield b"never sent\n"  # pragma: no cover

    return StreamingResponse(body())


def starlette_app() -> Any:
    app = Starlette(
        routes=[
            Route("/fast", fast),
            Route("/slow", slow),
            Route("/sync-slow", sync_slow),
            Route("/ai/generate", generate, methods=["POST"]),
            Route("/budget", budget),
            Route("/stream", stream),
            Route("/health", HealthApp(token=TOKEN)),
            Route("/strict", HealthApp(path="/strict", fail_on=("unhealthy", "critical"))),
            Mount("/status", HealthApp()),
        ]
    )
    app.add_middleware(RequestTimeoutMiddleware, timeout=BUDGET, routes={"/ai/generate": 2})
    app.add_middleware(CorrelationIdMiddleware)  # added last: outermost
    return app


@pytest.fixture(scope="module")
def site() -> Iterator[UvicornServer]:
    with UvicornServer(starlette_app()) as running:
        yield running


@pytest.fixture
def http(site: UvicornServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, verify=TLS, timeout=5) as client:
        yield client


# --- RequestTimeoutMiddleware -------------------------------------------------------------


def test_a_handler_past_its_budget_gets_a_504_with_the_correlation_id(http: httpx.Client) -> None:
    """The client gets 504 JSON naming the request's ID on time, and the handler is cancelled."""
    cancelled.clear()
    started = time.monotonic()
    response = http.get("/slow", headers={"X-Correlation-ID": "req-504"})
    assert time.monotonic() - started < BUDGET + 0.3
    assert response.status_code == 504
    body = response.json()
    assert body["error"] == "request_timeout"
    assert body["correlation_id"] == "req-504"
    assert body["timeout_seconds"] == BUDGET
    assert response.headers["x-correlation-id"] == "req-504"
    assert cancelled.wait(1)


def test_a_504_counts_as_a_timeout_in_the_report_with_metrics_off(http: httpx.Client) -> None:
    """With no sink, each request past its budget is a timeout error in the health report."""
    assert resilient.configuration().metrics is None
    for _ in range(2):
        assert http.get("/slow").status_code == 504
    assert telemetry.generate_report()["errors_by_type"] == {"timeout": 2}


def test_a_generated_id_is_the_same_in_the_504_and_its_header(http: httpx.Client) -> None:
    """Without an incoming ID, the 504 body and header carry the one made for the request."""
    response = http.get("/slow")
    assert response.status_code == 504
    assert response.json()["correlation_id"] == response.headers["x-correlation-id"]


def test_a_sync_handler_in_a_thread_still_gets_its_504_on_time(http: httpx.Client) -> None:
    """A worker thread cannot be stopped, but the client is answered at the budget."""
    started = time.monotonic()
    response = http.get("/sync-slow")
    assert response.status_code == 504
    assert time.monotonic() - started < 0.45


def test_a_route_has_its_own_budget(http: httpx.Client) -> None:
    """``routes={"/ai/generate": 2}`` lets a 0.3 s handler finish under a 0.15 s default."""
    response = http.post("/ai/generate", json={"prompt": "photosynthesis"})
    assert response.status_code == 200


def test_the_handler_sees_its_budget_as_the_deadline(http: httpx.Client) -> None:
    """Inside the handler ``resilient.remaining()`` is the time left of the request's budget."""
    left = http.get("/budget").json()["remaining"]
    assert 0 < left <= BUDGET


def test_a_started_response_that_runs_late_is_cut(http: httpx.Client) -> None:
    """A late streaming response cannot become a 504: the connection is closed instead."""
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/stream")


def test_fast_requests_pass_untouched(http: httpx.Client) -> None:
    """A quick handler answers normally, with its correlation ID current and in ``state``."""
    response = http.get("/fast", headers={"X-Correlation-ID": "req-1"})
    assert response.json() == {"correlation_id": "req-1", "state": "req-1"}
    assert response.headers["x-correlation-id"] == "req-1"


def test_malformed_incoming_ids_are_replaced(http: httpx.Client) -> None:
    """An ID with unsafe characters is not trusted: the request gets a fresh one."""
    response = http.get("/fast", headers={"X-Correlation-ID": "bad id with spaces"})
    cid = response.headers["x-correlation-id"]
    assert cid != "bad id with spaces"
    assert correlation.is_valid(cid)


def test_budgets_by_route_prefix() -> None:
    """The longest matching route prefix decides; ``None`` means no limit."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    middleware = RequestTimeoutMiddleware(
        app, timeout="standard", routes={"/ai": 30, "/ai/generate": "ai_operation", "/ws": None}
    )
    assert middleware.budget_for("/lessons") == 10.0
    assert middleware.budget_for("/ai/summarise") == 30
    assert middleware.budget_for("/ai/generate") == 45.0
    assert middleware.budget_for("/ai/generate/stream") == 45.0
    assert middleware.budget_for("/aix") == 10.0
    assert middleware.budget_for("/ws/chat") is None


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": "forever"}, "timeout"),
        ({"routes": {"ai": 3}}, "routes"),
        ({"routes": {"/ai": 0}}, "routes['/ai']"),
        ({"status_code": 200}, "status_code"),
    ],
)
def test_bad_middleware_settings_are_refused(options: dict[str, Any], parameter: str) -> None:
    """Bad budgets, paths or statuses raise ``ConfigError`` when the app is built."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(ConfigError) as caught:
        RequestTimeoutMiddleware(app, **options)
    assert caught.value.parameter == parameter


async def test_non_http_scopes_pass_through() -> None:
    """Lifespan and websocket scopes reach the app untouched."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def receive() -> Any:
        return {}

    async def send(message: Any) -> None:
        pass

    for wrapped in (RequestTimeoutMiddleware(app, 0.01), CorrelationIdMiddleware(app)):
        await wrapped({"type": "lifespan"}, receive, send)
        await wrapped({"type": "websocket", "headers": []}, receive, send)
    assert seen == ["lifespan", "websocket"] * 2


# --- health_app ---------------------------------------------------------------------------


def test_health_is_200_when_healthy(http: httpx.Client) -> None:
    """A quiet service reports healthy, degradation level ``none``."""
    response = http.get("/health")
    assert response.status_code == 200
    report = response.json()
    assert report["summary"]["health_status"] == "healthy"
    assert report["degradation"]["level"] == "none"
    assert response.headers["cache-control"] == "no-store"


def test_health_is_200_while_degraded(http: httpx.Client) -> None:
    """Ten to fifty errors: degraded, still 200, level ``minor``."""
    for _ in range(12):
        telemetry.record_http_error("timeout", "/api/ai")
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json()["summary"]["health_status"] == "degraded"
    assert response.json()["degradation"]["level"] == "minor"


def test_health_is_503_when_unhealthy(http: httpx.Client) -> None:
    """More than fifty errors: unhealthy, 503 where ``fail_on`` lists it, 200 by default."""
    for _ in range(51):
        telemetry.record_http_error("5xx", "/api/users")
    response = http.get("/strict")
    assert response.status_code == 503
    assert response.json()["summary"]["health_status"] == "unhealthy"
    default = http.get("/health")
    assert default.status_code == 200
    assert default.json()["summary"]["health_status"] == "unhealthy"


def test_health_is_503_when_a_host_breaker_is_open(http: httpx.Client) -> None:
    """An HTTP client's open host breaker makes the report critical; named critical, it
    fails readiness (503), otherwise the app stays ready (200)."""
    with ScriptedServer() as upstream:
        upstream.script("/a", Answer(500))
        with Client(upstream.url, breaker="critical", verify=TLS) as client:
            for _ in range(3):
                with pytest.raises(ResponseStatusError):
                    client.get("/a")
        host = f"127.0.0.1:{upstream.port}"
        with UvicornServer(HealthApp(critical=[host], token=TOKEN)) as named:
            response = httpx.get(f"{named.url}/health", headers=AUTH, verify=TLS)
        default = http.get("/health")
    assert response.status_code == 503
    report = response.json()
    assert report["summary"]["health_status"] == "critical"
    assert report["open_circuits"] == [host]
    assert report["critical_open_circuits"] == [host]
    assert default.status_code == 200
    assert default.json()["summary"]["open_circuits"] == 1


def test_health_reports_unavailable_features(http: httpx.Client) -> None:
    """Disabled features and the level they cause appear in the report."""
    from resilient._degradation import DegradationService
    from resilient.http import network_feature

    DegradationService.instance.disable(network_feature(), "captive portal (test)")
    degradation = http.get("/health", headers=AUTH).json()["degradation"]
    assert degradation["level"] == "severe"
    assert degradation["unavailable_features"] == {"network": "disabled: captive portal (test)"}


def test_health_refuses_other_paths_and_methods(http: httpx.Client) -> None:
    """Only ``GET``/``HEAD`` of its own path are served."""
    assert http.get("/status/extra").status_code == 404
    assert http.post("/health").status_code == 405
    assert http.head("/health").status_code == 200


def test_health_app_can_be_mounted(http: httpx.Client) -> None:
    """Mounted under another prefix, it answers at the mount point."""
    response = http.get("/status/")
    assert response.status_code == 200
    assert response.json()["summary"]["health_status"] == "healthy"


def test_health_app_serves_alone_with_lifespan() -> None:
    """Served directly, with lifespan events on, it answers ``/health``."""
    alone_app = HealthApp(services=["ai-generate"], token=TOKEN)
    with UvicornServer(alone_app, lifespan="on") as alone:
        report = httpx.get(f"{alone.url}/health", headers=AUTH, verify=TLS).json()
    assert report["services"] == {"ai-generate": "unknown"}


def test_bad_health_settings_are_refused() -> None:
    """A relative path or a single string of services is a ``ConfigError``."""
    with pytest.raises(ConfigError):
        HealthApp(path="health")
    with pytest.raises(ConfigError):
        HealthApp(services="ai-generate")


# --- FastAPI ------------------------------------------------------------------------------


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain/{item_id}")
    async def plain(item_id: int, q: str | None = None, limit: int = 10) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.get("/items/{item_id}")
    @fallback(lambda item_id, q=None, limit=10: {"item_id": item_id, "fallback": True})
    @resilient.breaker("items", "standard")
    @resilient.timeout(0.1)
    async def items(item_id: int, q: str | None = None, limit: int = 10) -> dict[str, Any]:
        if q == "slow":
            await asyncio.sleep(1)
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.get("/sync/{item_id}")
    @resilient.timeout(1)
    def sync_items(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.get("/hang")
    async def hang() -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}  # pragma: no cover

    app.add_middleware(RequestTimeoutMiddleware, timeout=BUDGET)
    app.add_middleware(CorrelationIdMiddleware)
    return app


def _parameters(schema: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return sorted(schema["paths"][path]["get"]["parameters"], key=lambda p: p["name"])


def test_fastapi_keeps_the_openapi_parameters_of_decorated_endpoints() -> None:
    """Endpoints under ``@fallback``/``@breaker``/``@timeout`` keep their OpenAPI parameters."""
    schema = fastapi_app().openapi()
    plain = _parameters(schema, "/plain/{item_id}")
    assert _parameters(schema, "/items/{item_id}") == plain
    assert [p["name"] for p in plain] == ["item_id", "limit", "q"]
    assert [p["name"] for p in _parameters(schema, "/sync/{item_id}")] == ["item_id", "q"]


def test_fastapi_endpoints_work_under_the_middleware() -> None:
    """Decorated endpoints answer, fall back, validate and time out through the middleware."""
    with UvicornServer(fastapi_app()) as api, httpx.Client(base_url=api.url, verify=TLS) as http:
        assert http.get("/items/3", params={"q": "x"}).json() == {
            "item_id": 3,
            "q": "x",
            "limit": 10,
        }
        assert http.get("/items/3", params={"q": "slow"}).json() == {
            "item_id": 3,
            "fallback": True,
        }
        assert http.get("/items/not-a-number").status_code == 422
        assert http.get("/sync/5").json() == {"item_id": 5, "q": None}
        response = http.get("/hang", headers={"X-Correlation-ID": "fastapi-1"})
        assert response.status_code == 504
        assert response.json()["correlation_id"] == "fastapi-1"


def test_count_goes_through_the_emitter_or_else_the_window() -> None:
    """``telemetry.count`` counts in the configured sink with metrics on (and the window
    through it), through an emitter passed to it, and in the window alone with them off."""
    from resilient._wrapping.emit import emitter_for
    from resilient.metrics import MemorySink

    telemetry.count("timeouts_total", (("policy", "off"),))
    assert telemetry.window.totals["timeouts_total"] == 1
    sink = MemorySink()
    resilient.configure(metrics=sink)
    telemetry.count("timeouts_total", (("policy", "on"),))
    own = MemorySink()
    telemetry.count("fallbacks_used_total", (), 2, emitter=emitter_for(own))
    assert sink.counter("timeouts_total", policy="on") == 1
    assert own.counter("fallbacks_used_total") == 2
    assert sink.counter("fallbacks_used_total") == 0

"""The health endpoint: liveness apart from readiness, critical breakers and features, a
public summary with the detail behind a token, HEAD, a bounded body built off the loop."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import resilient
from resilient import BreakerConfig, CircuitBreaker, DegradationLevel, Feature, telemetry
from resilient._breaker.registry import CircuitBreakerRegistry
from resilient._degradation import DegradationService
from resilient.asgi import HealthApp, HealthMiddleware, health_app
from resilient.asgi._health import CACHE_SECONDS
from resilient.exceptions import ConfigError
from resilient.metrics import MemorySink
from resilient.testing import FakeClock

TOKEN = "a-long-operator-token-42"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def opened(name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
    """A registered breaker ``name``, forced open."""
    breaker = CircuitBreakerRegistry.instance.get_or_create(name, config)
    breaker.force_open()
    return breaker


async def get(
    app: Any, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.request(method, path, headers=headers)


# --- liveness and readiness ---------------------------------------------------------------


async def test_an_open_breaker_behind_a_degradable_feature_keeps_the_app_ready() -> None:
    """``ai_service`` open: still 200 (ready), the body shows the level it degrades to."""
    opened("ai_service", BreakerConfig.ai_operation)
    response = await get(health_app, "/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["summary"]["open_circuits"] == 1
    assert body["summary"]["unavailable_features"] == 1
    assert body["degradation"]["level"] == "moderate"
    assert body["degradation"]["ui_impact"] == "Warning banner"


async def test_liveness_answers_while_readiness_fails() -> None:
    """With a critical breaker open, ``/live`` is 200 and ``/ready`` and the root 503."""
    opened("payments-db")
    app = HealthApp(critical=["payments-db"])
    live = await get(app, "/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    for path in ("/health", "/health/", "/health/ready"):
        response = await get(app, path)
        assert response.status_code == 503, path
        assert response.json()["status"] == "not_ready"
        assert response.json()["reason"] == "1 critical circuit(s) open"


async def test_a_critical_breaker_fails_readiness_until_it_closes(fake_clock: FakeClock) -> None:
    """A breaker named in ``critical`` fails readiness while open, not after ``reset()``."""
    breaker = opened("payments-db")
    app = HealthApp(critical=["payments-db", "never-made"])
    assert (await get(app, "/health/ready")).status_code == 503
    breaker.reset()
    fake_clock.advance(CACHE_SECONDS)
    response = await get(app, "/health/ready")
    assert response.status_code == 200
    assert response.json()["summary"]["critical_open_circuits"] == 0


async def test_a_breaker_marked_critical_fails_readiness(fake_clock: FakeClock) -> None:
    """``breaker(name, critical=True)`` makes its breaker critical without naming it."""
    resilient.breaker("ledger", BreakerConfig(failure_threshold=2), critical=True)
    opened("ledger")
    assert (await get(health_app, "/health")).status_code == 503
    CircuitBreakerRegistry.instance.get("ledger").reset()
    fake_clock.advance(CACHE_SECONDS)
    assert (await get(health_app, "/health")).status_code == 200


async def test_a_critical_feature_unavailable_fails_readiness(fake_clock: FakeClock) -> None:
    """``Feature(critical=True)`` unavailable: 503; a feature that is not critical: 200."""
    service = DegradationService.instance
    checkout = Feature("checkout", depends_on=("payments",), critical=True)
    hints = Feature("hints", level=DegradationLevel.minor)
    service.disable(hints, "model retrained")
    response = await get(health_app, "/health")
    assert response.status_code == 200
    assert response.json()["degradation"]["level"] == "minor"
    opened("payments")
    assert service.why_unavailable(checkout) == "circuit 'payments' is open"
    fake_clock.advance(CACHE_SECONDS)
    response = await get(health_app, "/health")
    assert response.status_code == 503
    assert response.json()["summary"]["critical_unavailable_features"] == 1
    assert response.json()["reason"] == "1 critical feature(s) unavailable"


async def test_fail_on_adds_health_statuses_to_readiness(fake_clock: Any) -> None:
    """51 errors: 200 by default (reported unhealthy), 503 with ``fail_on=("unhealthy",)``."""
    for _ in range(51):
        telemetry.record_http_error("5xx", "api")
    default = await get(health_app, "/health")
    assert default.status_code == 200
    assert default.json()["summary"]["health_status"] == "unhealthy"
    assert default.json()["degradation"]["level"] == "moderate"
    strict = await get(HealthApp(fail_on=["unhealthy"]), "/health")
    assert strict.status_code == 503
    assert strict.json()["reason"] == "health status unhealthy"


# --- what the public sees, what the operator sees -----------------------------------------


async def test_the_public_answer_names_no_breaker_host_or_reason() -> None:
    """Without the token the body has counts only: no names, hosts or disable reasons."""
    opened("10.0.0.7:5432")
    opened("billing-internal")
    DegradationService.instance.disable("ai_assistant", "vendor contract lapsed")
    app = HealthApp(token=TOKEN, services=["billing-internal"])
    response = await get(app, "/health")
    text = response.text
    for secret in ("10.0.0.7", "5432", "billing-internal", "vendor contract", "ai_assistant"):
        assert secret not in text
    body = response.json()
    assert set(body) == {"status", "reason", "summary", "degradation"}
    assert body["summary"]["open_circuits"] == 2
    assert body["summary"]["unavailable_features"] == 1


async def test_the_token_opens_the_detail() -> None:
    """The right bearer token gets names and reasons; a wrong one 401; none the summary."""
    opened("10.0.0.7:5432")
    DegradationService.instance.disable("ai_assistant", "vendor contract lapsed")
    app = HealthApp(token=TOKEN, services=["10.0.0.7:5432", "idle"])
    detail = (await get(app, "/health", headers=AUTH)).json()
    assert detail["open_circuits"] == ["10.0.0.7:5432"]
    assert detail["circuits"] == {"10.0.0.7:5432": "forced_open"}
    assert detail["services"] == {"10.0.0.7:5432": "forced_open", "idle": "unknown"}
    assert detail["degradation"]["unavailable_features"] == {
        "ai_assistant": "disabled: vendor contract lapsed"
    }
    assert "circuit open: 10.0.0.7:5432" in detail["summary"]["reason"]
    wrong = await get(app, "/health", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert "10.0.0.7" not in wrong.text
    assert "open_circuits" not in (await get(app, "/health")).json()


def test_the_detail_lists_breakers_by_severity(fake_clock: Any) -> None:
    """Forced open, open, half-open, disabled, closed; critical first within a state; the
    summary counts each state."""
    registry = CircuitBreakerRegistry.instance
    one = BreakerConfig(failure_threshold=1, reset_timeout=10)
    for name in ("a-closed", "b-disabled", "c-half", "d-open", "e-forced", "f-open-critical"):
        registry.get_or_create(name, one)
    registry.get("b-disabled").disable()
    registry.get("e-forced").force_open()
    for name in ("c-half", "d-open", "f-open-critical"):
        with pytest.raises(ConnectionError):
            registry.get(name).call(_refuse)
    fake_clock.advance(10)
    for name in ("d-open", "f-open-critical"):
        registry.get(name).force_open()
        registry.get(name).reset()
        with pytest.raises(ConnectionError):
            registry.get(name).call(_refuse)
    app = HealthApp(critical=["f-open-critical"], limit=5)
    ready, public, detail = app.check()
    assert not ready
    assert list(detail["circuits"].items()) == [
        ("e-forced", "forced_open"),
        ("f-open-critical", "open"),
        ("d-open", "open"),
        ("c-half", "half_open"),
        ("b-disabled", "disabled"),
    ]
    assert detail["circuits_omitted"] == 1
    summary = public["summary"]
    assert (summary["open_circuits"], summary["half_open_circuits"]) == (3, 1)
    assert (summary["disabled_circuits"], summary["critical_open_circuits"]) == (1, 1)


def _refuse() -> None:
    raise ConnectionError("refused")


async def test_without_a_token_the_detail_is_off() -> None:
    """With no token configured, even a request with a bearer token gets the summary."""
    opened("10.0.0.7:5432")
    response = await get(HealthApp(), "/health", headers=AUTH)
    assert response.status_code == 200
    assert "10.0.0.7" not in response.text


async def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check goes through ``hmac.compare_digest``."""
    seen: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr("resilient.asgi._health.hmac.compare_digest", compare)
    await get(HealthApp(token=TOKEN), "/health", headers={"Authorization": "bearer   x"})
    assert seen == [(b"x", TOKEN.encode())]


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"token": "short"}, "token"),
        ({"token": "has a space in it, sadly"}, "token"),
        ({"token": 12345678901234567}, "token"),
        ({"critical": "payments-db"}, "critical"),
        ({"critical": ["ok", ""]}, "critical"),
        ({"services": "ai-generate"}, "services"),
        ({"fail_on": ["sad"]}, "fail_on"),
        ({"fail_on": "unhealthy"}, "fail_on"),
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"path": "health"}, "path"),
    ],
)
def test_bad_health_settings_are_refused(options: dict[str, Any], parameter: str) -> None:
    """Each bad setting is a ``ConfigError`` naming it; a token never appears in the message."""
    with pytest.raises(ConfigError) as caught:
        HealthApp(**options)
    assert caught.value.parameter == parameter
    assert "a space in it" not in str(caught.value)


def test_the_repr_shows_the_settings_but_never_the_token() -> None:
    """``repr`` says the detail is behind a token without showing it."""
    shown = repr(HealthApp(token=TOKEN, critical=["db"]))
    assert TOKEN not in shown
    assert "detail=token" in shown
    assert "'db'" in shown


def test_the_middleware_refuses_what_is_not_an_app_or_a_health_app() -> None:
    """``HealthMiddleware`` needs an ASGI app and, if given, a ``HealthApp``."""
    with pytest.raises(ConfigError):
        HealthMiddleware(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        HealthMiddleware(health_app, health=object())  # type: ignore[arg-type]


# --- HEAD, size and the event loop --------------------------------------------------------


async def call(app: Any, method: str, path: str) -> list[dict[str, Any]]:
    """The ASGI messages ``app`` sends for one request."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    await app(scope, receive, send)
    return sent


async def test_head_gets_the_status_without_a_body() -> None:
    """HEAD: the same status as GET and an empty body, ready or not."""
    sent = await call(health_app, "HEAD", "/health")
    assert sent[0]["status"] == 200
    assert [m.get("body") for m in sent[1:]] == [b""]
    opened("payments-db")
    sent = await call(HealthApp(critical=["payments-db"]), "HEAD", "/health")
    assert sent[0]["status"] == 503
    assert [m.get("body") for m in sent[1:]] == [b""]


def many_breakers(count: int, open_every: int) -> None:
    """``count`` breakers, every ``open_every``-th forced open, in a store of their own (the
    default store keeps its cells for the whole session)."""
    resilient.configure(store=resilient.stores.MemoryStore())
    registry = CircuitBreakerRegistry.instance
    config = BreakerConfig.external_api
    for index in range(count):
        breaker = registry.get_or_create(f"edge-{index:05d}.example:443", config)
        if index % open_every == 0:
            breaker.force_open()


async def test_twenty_thousand_breakers_give_a_bounded_body() -> None:
    """20k per-host breakers (5k open): a public body under 1 KB, a detail under 16 KB
    listing the 50 most severe, with exact counts."""
    many_breakers(20_000, open_every=4)
    app = HealthApp(token=TOKEN)
    public = await get(app, "/health")
    assert len(public.content) < 1024
    summary = public.json()["summary"]
    assert (summary["circuits"], summary["open_circuits"]) == (20_000, 5_000)
    detail = await get(app, "/health", headers=AUTH)
    assert len(detail.content) < 16 * 1024
    body = detail.json()
    assert len(body["circuits"]) == 50
    assert set(body["circuits"].values()) == {"forced_open"}
    assert body["circuits_omitted"] == 19_950
    assert len(body["open_circuits"]) == 50
    assert "and 4950 more" in body["summary"]["reason"]
    assert len(body["gauges"]) <= 50


async def test_the_report_is_built_off_the_event_loop_once_for_every_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check runs in a worker thread; requests arriving meanwhile share that build."""
    release = threading.Event()
    threads: list[int] = []
    real: Callable[[HealthApp], Any] = HealthApp.check

    def slow_check(self: HealthApp) -> Any:
        threads.append(threading.get_ident())
        release.wait(5)
        return real(self)

    monkeypatch.setattr(HealthApp, "check", slow_check)
    app = HealthApp()
    requests = [asyncio.ensure_future(get(app, "/health")) for _ in range(3)]
    for _ in range(20):
        await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*requests)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()
    assert app._building is None


@pytest.mark.realtime
async def test_a_build_in_its_thread_is_awaited_under_fake_clock(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under fake_clock, a request with a 5 s budget waits for a 20 ms build in the app's
    thread instead of the loop jumping to its deadline, and the build skips the default
    executor."""
    threads: list[str] = []
    real: Callable[[HealthApp], Any] = HealthApp.check

    def slow_check(self: HealthApp) -> Any:
        threads.append(threading.current_thread().name)
        threading.Event().wait(0.02)  # real work in the build's thread
        return real(self)

    monkeypatch.setattr(HealthApp, "check", slow_check)
    response = await asyncio.wait_for(get(HealthApp(), "/health"), 5)
    assert response.status_code == 200
    assert fake_clock.monotonic() < 5
    assert threads == ["resilient-health"]


async def test_a_check_that_fails_answers_503_and_is_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing check is a 503 saying so, never a crash of the server's request."""

    def broken(self: HealthApp) -> Any:
        raise RuntimeError("store exploded")

    monkeypatch.setattr(HealthApp, "check", broken)
    response = await get(HealthApp(), "/health")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "reason": "the health check failed"}
    assert (await get(HealthApp(), "/health/live")).status_code == 200


# --- errors and latency with metrics off --------------------------------------------------


def test_counted_errors_reach_the_report_with_metrics_off(fake_clock: Any) -> None:
    """``count_error`` feeds the window: 12 timeouts with metrics off are ``degraded``."""
    assert resilient.configuration().metrics is None
    for _ in range(12):
        telemetry.count_error("timeouts_total", (("policy", "app.generate"),))
    summary = telemetry.generate_report()["summary"]
    assert summary["total_errors"] == 12
    assert summary["health_status"] == "degraded"


def test_with_metrics_off_the_report_says_latency_is_not_measured(fake_clock: Any) -> None:
    """No sink: ``latency_measured`` false and ``requests`` null; a sink: true and 0."""
    summary = telemetry.generate_report()["summary"]
    assert summary["latency_measured"] is False
    assert summary["requests"] is None
    assert "latency not measured" in summary["reason"]
    resilient.configure(metrics=MemorySink())
    summary = telemetry.generate_report()["summary"]
    assert summary["latency_measured"] is True
    assert summary["requests"] == 0


async def test_the_health_body_says_latency_is_not_measured() -> None:
    """The public summary carries ``latency_measured`` and no request count with metrics off."""
    summary = (await get(health_app, "/health")).json()["summary"]
    assert summary["latency_measured"] is False
    assert summary["requests"] is None
    assert summary["latency_p95_ms"] is None


def test_the_detail_is_json_ready() -> None:
    """``report()`` serialises to JSON as it is."""
    opened("ai_service", BreakerConfig.ai_operation)
    report = HealthApp().report()
    assert json.loads(json.dumps(report))["open_circuits"] == ["ai_service"]


def test_breaker_trips_and_rejections_reach_the_report_with_metrics_off(fake_clock: Any) -> None:
    """No sink: a trip and three rejected calls show in the report's counters."""
    guarded = CircuitBreaker("flaky", BreakerConfig(failure_threshold=1))

    def refuse() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        guarded.call(refuse)
    for _ in range(3):
        with pytest.raises(resilient.CircuitOpenError):
            guarded.call(refuse)
    counters = telemetry.generate_report()["counters"]
    assert counters == {"circuit_breaker_opens_total": 1, "calls_rejected_total": 3}


def test_http_errors_reach_the_report_with_metrics_off(fake_clock: Any) -> None:
    """No sink: twelve 500s from a real server on loopback make the report ``degraded``."""
    from http_servers import TLS, Answer, ScriptedServer

    from resilient.http import Client, ResponseStatusError

    with ScriptedServer() as upstream:
        upstream.script("/boom", Answer(500))
        with Client(upstream.url, breaker=None, verify=TLS) as client:
            for _ in range(12):
                with pytest.raises(ResponseStatusError):
                    client.get("/boom", config="quick")
    summary = telemetry.generate_report()["summary"]
    assert upstream.hits("/boom") == 12  # a 500 is not retried
    assert summary["total_errors"] == 12
    assert summary["health_status"] == "degraded"


def test_reading_health_evicts_idle_breakers(fake_clock: Any) -> None:
    """Like the telemetry report, a health check sweeps breakers idle past ``idle_timeout``."""
    registry = CircuitBreakerRegistry.instance
    for index in range(3):
        registry.get_or_create(f"idle-{index}")
    assert HealthApp().check()[1]["summary"]["circuits"] == 3
    assert registry.idle_timeout is not None
    fake_clock.advance(registry.idle_timeout)
    assert HealthApp().check()[1]["summary"]["circuits"] == 0


async def test_timeouts_reach_the_report_with_metrics_off(fake_clock: FakeClock) -> None:
    """No sink: twelve ``@timeout`` expiries make the report ``degraded``, not healthy."""
    assert resilient.configuration().metrics is None

    @resilient.timeout(1)
    async def generate() -> None:
        await fake_clock.asleep(5)

    for _ in range(12):
        with pytest.raises(resilient.TimeoutExceededError):
            await generate()
    report = telemetry.generate_report()
    assert report["errors_by_type"] == {"timeout": 12}
    assert report["summary"]["health_status"] == "degraded"
    assert report["summary"]["latency_measured"] is False

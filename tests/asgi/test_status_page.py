"""The status page without a browser: the level banner, the public and the detailed view,
the ``state`` JSON the page polls, the operator's token, CSRF and origin checks, the
action log, and a page that loads nothing from elsewhere."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

import resilient
from resilient import BreakerConfig, CircuitBreaker, DegradationLevel, Feature, telemetry
from resilient._breaker.registry import CircuitBreakerRegistry
from resilient._degradation import DegradationService, Features
from resilient.asgi import StatusApp, status_app
from resilient.asgi._health import CACHE_SECONDS
from resilient.asgi._status_actions import CSRF_SECONDS, MAX_BODY, CsrfTokens
from resilient.asgi._status_page import _CSS, _SCRIPT
from resilient.asgi._status_report import StatusCollector, _error_kind
from resilient.exceptions import ConfigError
from resilient.testing import FakeClock

TOKEN = "a-long-operator-token-42"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def breaker(name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
    return CircuitBreakerRegistry.instance.get_or_create(name, config)


def opened(name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
    """A registered breaker ``name``, forced open."""
    found = breaker(name, config)
    found.force_open()
    return found


async def call(
    app: Any,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.request(method, path, headers=headers, data=data, content=content)


async def csrf_of(app: StatusApp) -> str:
    token = (await call(app, "/status/state")).json()["csrf"]
    assert isinstance(token, str)
    return token


async def act(
    app: StatusApp,
    action: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    csrf: str | None = None,
    who: str = "",
) -> httpx.Response:
    form = {"action": action, "target": target, "who": who}
    form["csrf"] = await csrf_of(app) if csrf is None else csrf
    return await call(
        app, "/status/actions", "POST", headers={**FORM, **AUTH, **(headers or {})}, data=form
    )


# --- what the page shows ------------------------------------------------------------------


async def test_the_public_page_shows_the_level_banner_and_no_names_or_reasons() -> None:
    """``ai_service`` open: a warning banner saying "AI unavailable", no breaker host, no
    reason."""
    opened("ai_service", BreakerConfig.ai_operation)
    opened("10.0.0.7:5432")
    response = await call(status_app(), "/status/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert 'class="banner banner-warning" data-level="moderate"' in page
    assert "AI unavailable" in page
    assert "UI impact: Warning banner" in page
    assert "2 forced open" in page
    assert "10.0.0.7" not in page
    assert "is open" not in page  # the feature's reason names its breaker
    assert "ai_service" not in page


@pytest.mark.parametrize(
    ("level", "banner", "impact"),
    [
        (DegradationLevel.minor, "info", "Info banner"),
        (DegradationLevel.moderate, "warning", "Warning banner"),
        (DegradationLevel.severe, "error", "Error banner"),
        (DegradationLevel.critical, "fullscreen", "Full-screen error"),
    ],
)
async def test_each_level_gets_the_banner_of_its_ui_impact(
    level: DegradationLevel, banner: str, impact: str
) -> None:
    """A feature degrading the app to ``level`` turns the banner to the design table's
    impact for it (full screen at critical)."""
    Features.register(Feature("search", depends_on=("search-db",), level=level))
    opened("search-db")
    body = (await call(status_app(), "/status/state")).json()
    assert body["report"]["level"] == {
        "name": level.name,
        "rank": int(level),
        "description": level.description,
        "ui_impact": impact,
        "banner": banner,
    }
    assert f"banner-{banner}" in body["fragments"]["banner"]
    assert level.description in body["fragments"]["banner"]


async def test_with_everything_working_the_banner_says_so() -> None:
    """No breaker open: the level is none, "Full functionality", a normal banner."""
    breaker("ai_service", BreakerConfig.ai_operation)
    body = (await call(status_app(), "/status/state")).json()
    assert body["report"]["level"]["name"] == "none"
    assert "banner-ok" in body["fragments"]["banner"]
    assert "Full functionality" in body["fragments"]["banner"]


async def test_the_state_endpoint_has_the_documented_shape() -> None:
    """``state`` gives the view, the refresh period, whether actions are on, a CSRF token,
    the report and the two fragments."""
    opened("ai_service", BreakerConfig.ai_operation)
    body = (await call(status_app(token=TOKEN, refresh=3), "/status/state")).json()
    assert set(body) == {"csrf", "view", "refresh_seconds", "actions", "report", "fragments"}
    assert (body["view"], body["refresh_seconds"], body["actions"]) == ("public", 3, True)
    assert set(body["fragments"]) == {"banner", "content"}
    report = body["report"]
    assert set(report) == {
        "generated_at",
        "level",
        "health",
        "breakers",
        "features",
        "bulkheads",
        "errors",
        "rates",
    }
    assert report["breakers"] == {
        "total": 1,
        "closed": 0,
        "open": 0,
        "half_open": 0,
        "forced_open": 1,
        "disabled": 0,
    }
    assert report["features"]["listed"] == [
        {
            "name": "ai_assistant",
            "description": "AI hints and explanations",
            "available": False,
            "level": "moderate",
            "critical": False,
        }
    ]
    assert report["bulkheads"] is None
    assert set(report["rates"]) == {
        "measured",
        "span_seconds",
        "retries_per_minute",
        "fallbacks_per_minute",
        "retries_total",
        "fallbacks_total",
    }


async def test_the_token_opens_the_detail(fake_clock: FakeClock) -> None:
    """With the bearer token: every breaker with state, failures, time to the next probe,
    and the features' reasons; error counts by kind."""
    tripped = breaker("ai_service", BreakerConfig(failure_threshold=2, reset_timeout=60))
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            tripped.call(lambda: 1 / 0)
    fake_clock.advance(15)
    breaker("quiet")
    telemetry.record_http_error("timeout", "/ai")
    body = (await call(status_app(token=TOKEN), "/status/state", headers=AUTH)).json()
    assert body["view"] == "detail"
    listed = body["report"]["breakers"]["listed"]
    assert listed[0] == {
        "name": "ai_service",
        "state": "open",
        "failures": 2,
        "threshold": 2,
        "next_probe_seconds": 45.0,
        "critical": False,
        "last_error": listed[0]["last_error"],
    }
    assert [entry["name"] for entry in listed] == ["ai_service", "quiet"]
    assert body["report"]["features"]["listed"][0]["reason"] == "circuit 'ai_service' is open"
    assert body["report"]["errors"]["by_type"] == {"timeout": 1}
    assert body["report"]["health"]["reason"] == "circuit open: ai_service"
    assert "in 45 s" in body["fragments"]["content"]


async def test_the_page_itself_is_detailed_for_a_bearer_token() -> None:
    """``curl -H 'Authorization: Bearer ...'`` gets the page with the names."""
    opened("10.0.0.7:5432")
    page = (await call(status_app(token=TOKEN), "/status/", headers=AUTH)).text
    assert "10.0.0.7:5432" in page
    assert 'data-view="detail"' in page


async def test_a_wrong_token_is_refused_with_401() -> None:
    """A wrong bearer token reading the page or ``state`` gets 401, never the summary."""
    app = status_app(token=TOKEN)
    for path in ("/status/", "/status/state"):
        response = await call(app, path, headers={"Authorization": "Bearer wrong-token-here"})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


async def test_without_a_token_a_bearer_gets_the_public_view() -> None:
    """No token configured: the detail is off, whatever a request carries."""
    opened("10.0.0.7:5432")
    body = (await call(status_app(), "/status/state", headers=AUTH)).json()
    assert body["view"] == "public"
    assert body["csrf"] is None
    assert "10.0.0.7" not in str(body)


async def test_public_detail_shows_the_names_to_everyone() -> None:
    """``public_detail=True`` lists breakers and reasons without a token."""
    opened("10.0.0.7:5432")
    body = (await call(status_app(public_detail=True), "/status/state")).json()
    assert body["view"] == "detail"
    assert body["report"]["breakers"]["listed"][0]["name"] == "10.0.0.7:5432"
    assert body["actions"] is False
    assert 'data-action="' not in body["fragments"]["content"]


async def test_names_are_escaped_in_the_html() -> None:
    """A breaker name with markup is shown as text."""
    opened("<script>alert(1)</script>")
    body = (await call(status_app(public_detail=True), "/status/state")).json()
    assert "<script>alert" not in body["fragments"]["content"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body["fragments"]["content"]


async def test_bulkheads_are_optional_and_the_saturated_ones_listed() -> None:
    """Without bulkheads the section is absent (``null``); with them, the detail lists
    the saturated ones and the public view counts them."""
    rows = [
        {"name": "ai-pool", "max_concurrent": 2, "active": 2, "max_queue": 4, "queued": 4},
        {"name": "db-pool", "max_concurrent": 8, "active": 3},
    ]
    app = status_app(token=TOKEN, bulkheads=lambda: rows)
    detail = (await call(app, "/status/state", headers=AUTH)).json()
    assert detail["report"]["bulkheads"] == {
        "total": 2,
        "saturated": 1,
        "listed": [
            {
                "name": "ai-pool",
                "active": 2,
                "max_concurrent": 2,
                "queued": 4,
                "max_queue": 4,
                "saturated": True,
            }
        ],
        "omitted": 0,
    }
    assert "Saturated bulkheads" in detail["fragments"]["content"]
    public = (await call(app, "/status/state")).json()
    assert public["report"]["bulkheads"] == {"total": 2, "saturated": 1}
    assert "ai-pool" not in str(public)
    plain = (await call(status_app(), "/status/state")).json()
    assert plain["report"]["bulkheads"] is None
    assert "Bulkheads" not in plain["fragments"]["content"]


async def test_a_real_saturated_bulkhead_is_listed_by_default() -> None:
    """With no ``bulkheads=`` source the page reads the ``@bulkhead`` compartments: one
    whose slots are all taken is listed."""
    gate = asyncio.Event()

    @resilient.bulkhead(1, name="ai-pool")
    async def ask() -> None:
        await gate.wait()

    task = asyncio.ensure_future(ask())
    await asyncio.sleep(0)
    try:
        detail = (await call(status_app(token=TOKEN), "/status/state", headers=AUTH)).json()
    finally:
        gate.set()
        await task
    assert [row["name"] for row in detail["report"]["bulkheads"]["listed"]] == ["ai-pool"]


def test_retry_and_fallback_rates_come_from_the_telemetry_totals(fake_clock: FakeClock) -> None:
    """Rates are per minute over the builds of the last minute; a reset starts over."""
    collector = StatusCollector(limit=10)
    first = collector.collect()["rates"]
    assert (first["retries_per_minute"], first["span_seconds"]) == (None, None)
    for _ in range(6):
        telemetry.record_retry_attempt("ai")
    telemetry.record_fallback("ai")
    fake_clock.advance(30)
    rates = collector.collect()["rates"]
    assert rates["retries_per_minute"] == 12.0
    assert rates["fallbacks_per_minute"] == 2.0
    assert (rates["retries_total"], rates["span_seconds"]) == (6, 30.0)
    fake_clock.advance(60)
    telemetry.record_retry_attempt("ai")
    later = collector.collect()["rates"]
    assert (later["retries_per_minute"], later["span_seconds"]) == (1.0, 60.0)
    telemetry.window.clear()
    assert collector.collect()["rates"]["retries_per_minute"] is None


@pytest.mark.parametrize(
    ("found", "kind"),
    [
        (None, None),
        (TimeoutError("db.internal:5432 timed out"), "TimeoutError"),
        (ConnectionError, "ConnectionError"),
        ("timeout", "timeout"),
        (type("Failure", (), {"kind": "http_503"})(), "http_503"),
        (type("Failure", (), {"error": KeyError("x")})(), "KeyError"),
        (type("Failure", (), {"error_type": OSError})(), "OSError"),
        (object(), None),
    ],
)
def test_the_last_error_is_shown_by_kind_never_by_message(found: object, kind: str) -> None:
    """A breaker's last failure shows as its kind: an exception's class, never its text."""
    assert _error_kind(found) == kind


async def test_the_report_is_cached_for_a_second(fake_clock: FakeClock) -> None:
    """A change made elsewhere shows once ``CACHE_SECONDS`` have passed."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    app = status_app()
    assert (await call(app, "/status/state")).json()["report"]["level"]["name"] == "none"
    found.force_open()
    assert (await call(app, "/status/state")).json()["report"]["level"]["name"] == "none"
    fake_clock.advance(CACHE_SECONDS)
    assert (await call(app, "/status/state")).json()["report"]["level"]["name"] == "moderate"


async def test_a_failing_build_answers_503_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A report that cannot be built: 503 with a JSON body and one log line."""
    app = status_app()

    def broken() -> dict[str, Any]:
        raise RuntimeError("store gone")

    monkeypatch.setattr(app.collector, "collect", broken)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        response = await call(app, "/status/")
    assert response.status_code == 503
    assert response.json() == {"error": "the status report could not be built"}
    assert "status page failed" in caplog.text


def test_the_sync_build_is_shared_and_cached(fake_clock: FakeClock) -> None:
    """``built()`` builds once per ``CACHE_SECONDS``; ``changed()`` forces a new build."""
    app = status_app()
    builds: list[int] = []
    collect = app.collector.collect

    def counted() -> dict[str, Any]:
        builds.append(1)
        return collect()

    app.collector.collect = counted  # type: ignore[method-assign]
    first = app.built()
    assert app.built() is first
    app.changed()
    assert app.built() is not first
    fake_clock.advance(CACHE_SECONDS)
    app.built()
    assert len(builds) == 3


# --- serving --------------------------------------------------------------------------------


async def test_the_page_loads_nothing_from_elsewhere() -> None:
    """One document: no external URL, the inline style and script allowed by hash only,
    no framing."""
    page = (await call(status_app(token=TOKEN), "/status/")).text
    assert not re.search(r"https?:|//[a-z0-9]", page, re.IGNORECASE)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", page)
    assert page.count("<script>") == 1
    assert page.count("<style>") == 1
    response = await call(status_app(), "/status/")
    policy = response.headers["content-security-policy"]
    for source in (_SCRIPT, _CSS):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


async def test_the_page_is_readable_on_a_phone_and_labelled() -> None:
    """Viewport meta, a language, a live region for the banner, labelled inputs, table
    headers with scope, and a card layout for narrow screens."""
    opened("db")
    page = (await call(status_app(token=TOKEN, public_detail=True), "/status/")).text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<html lang="en">' in page
    assert '<div id="live" aria-live="polite" aria-atomic="true">' in page
    for field in ("op-token", "op-who"):
        assert f'<label for="{field}">' in page
        assert f'id="{field}"' in page
    assert '<th scope="col">State</th>' in page
    assert 'aria-label="Reset breaker db"' in page
    assert "@media (max-width:40rem)" in page


async def test_the_page_knows_where_it_is_mounted() -> None:
    """Served alone at ``/status``, or under a mount (``root_path``), the page polls the
    ``state`` below its own path."""
    app = status_app()
    alone = (await call(app, "/status")).text
    assert 'data-base="/status/"' in alone
    transport = httpx.ASGITransport(app=app, root_path="/ops")
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        mounted = (await client.get("/ops/")).text
    assert 'data-base="/ops/"' in mounted


async def test_other_paths_and_methods_are_refused() -> None:
    """An unknown path is 404, a POST to the page 405, HEAD has no body."""
    app = status_app()
    assert (await call(app, "/status/nope")).status_code == 404
    response = await call(app, "/status/state", "POST")
    assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")
    head = await call(app, "/status/", "HEAD")
    assert (head.status_code, head.content) == (200, b"")


# --- operator actions ---------------------------------------------------------------------


async def test_force_open_and_reset_act_on_the_breaker_and_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each action changes the breaker, shows at once, and is logged with who, what, when."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    app = status_app(token=TOKEN)
    assert (await call(app, "/status/state")).json()["report"]["level"]["name"] == "none"
    with caplog.at_level(logging.INFO, logger="resilient"):
        response = await act(app, "force_open", "ai_service", who="Ana\n(on call)")
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["state"], body["who"]) == (
        True,
        "forced_open",
        "Ana(on call) (127.0.0.1)",
    )
    assert found.opened
    assert (await call(app, "/status/state")).json()["report"]["level"]["name"] == "moderate"
    [record] = [r for r in caplog.records if hasattr(r, "resilient_action")]
    assert record.name == "resilient"
    assert record.levelno == logging.WARNING
    assert record.resilient_action == {
        "action": "force_open",
        "target": "ai_service",
        "kind": "breaker",
        "who": "Ana(on call) (127.0.0.1)",
        "at": body["at"],
        "state": "forced_open",
    }
    assert (
        "force_open breaker 'ai_service' by Ana(on call) (127.0.0.1) at 20" in record.getMessage()
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="resilient"):
        assert (await act(app, "reset", "ai_service")).json()["state"] == "closed"
    assert not found.opened
    assert "reset breaker 'ai_service' by 127.0.0.1" in caplog.text


async def test_disable_and_enable_a_feature() -> None:
    """Disabling a feature makes it unavailable with the operator as the reason."""
    app = status_app(token=TOKEN)
    response = await act(app, "disable", "ai_assistant", who="Ana")
    assert response.json()["state"] == "unavailable"
    reason = DegradationService.instance.why_unavailable("ai_assistant")
    assert reason == "disabled: disabled on the status page by Ana (127.0.0.1)"
    assert (await act(app, "enable", "ai_assistant")).json()["state"] == "available"
    assert DegradationService.instance.is_feature_available("ai_assistant")


async def test_actions_are_off_without_a_token() -> None:
    """No token configured, or ``actions=False``: every action is 403 and nothing changes."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    for app in (status_app(), status_app(token=TOKEN, actions=False)):
        response = await call(
            app, "/status/actions", "POST", headers={**FORM, **AUTH}, data={"action": "force_open"}
        )
        assert (response.status_code, response.json()["error"]) == (403, "actions_off")
    assert not found.opened
    page = (await call(status_app(token=TOKEN, actions=False), "/status/", headers=AUTH)).text
    assert 'data-action="' not in page


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Authorization": ""}, "token_required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "token_required"),
        ({"Authorization": "Bearer not-the-operator-token"}, "token_refused"),
    ],
)
async def test_an_action_without_the_token_gets_401(headers: dict[str, str], error: str) -> None:
    """Missing or wrong token: 401 with a bearer challenge; the breaker stays closed."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    response = await act(status_app(token=TOKEN), "force_open", "ai_service", headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, error)
    assert response.headers["www-authenticate"] == "Bearer"
    assert not found.opened


async def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The action's token and a reader's token go through ``hmac.compare_digest``."""
    seen: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare(a: Any, b: Any) -> bool:
        if isinstance(a, bytes):
            seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr("resilient.asgi._status_actions.hmac.compare_digest", compare)
    app = status_app(token=TOKEN)
    await call(app, "/status/state", headers={"Authorization": "Bearer guess-one"})
    await act(app, "reset", "x", headers={"Authorization": "Bearer guess-two"})
    assert seen == [(b"guess-one", TOKEN.encode()), (b"guess-two", TOKEN.encode())]


async def test_an_action_without_a_valid_csrf_token_is_refused(fake_clock: FakeClock) -> None:
    """Missing, forged, stale, or issued under another operator token: 403."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    app = status_app(token=TOKEN)
    good = await csrf_of(app)
    issued, nonce, _ = good.split(".")
    other = CsrfTokens(b"another-operator-token!").issue()
    old = CsrfTokens(TOKEN.encode(), wall=lambda: float(issued) - CSRF_SECONDS - 1).issue()
    for csrf in ("", "garbage", f"{issued}.{nonce}.{'0' * 64}", other, old):
        response = await act(app, "force_open", "ai_service", csrf=csrf)
        assert (response.status_code, response.json()["error"]) == (403, "csrf"), csrf
    assert not found.opened
    assert (await act(app, "force_open", "ai_service", csrf=good)).status_code == 200


async def test_a_csrf_token_with_non_ascii_digits_is_refused_as_csrf(fake_clock: FakeClock) -> None:
    """A CSRF token whose time is written in other scripts' digits (``١٢٣``, ``²``) is a
    forged one: 403 ``csrf``, not a 503 as if the action had failed."""
    breaker("ai_service", BreakerConfig.ai_operation)
    app = status_app(token=TOKEN)
    for csrf in ("\u0661\u0662\u0663.abc.def", "\u00b2\u00b3.ab.cd"):
        response = await act(app, "force_open", "ai_service", csrf=csrf)
        assert (response.status_code, response.json()["error"]) == (403, "csrf"), csrf


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
)
async def test_a_request_from_another_site_is_refused(headers: dict[str, str]) -> None:
    """A browser request from another origin is 403 even with the token and CSRF token."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    response = await act(status_app(token=TOKEN), "force_open", "ai_service", headers=headers)
    assert (response.status_code, response.json()["error"]) == (403, "cross_origin")
    assert not found.opened


async def test_a_same_origin_browser_request_goes_through() -> None:
    """``Sec-Fetch-Site: same-origin``, or an ``Origin`` naming the host, is accepted."""
    app = status_app(token=TOKEN)
    breaker("ai_service", BreakerConfig.ai_operation)
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://app"}):
        assert (await act(app, "reset", "ai_service", headers=headers)).status_code == 200


async def test_actions_are_post_only_forms_of_bounded_size() -> None:
    """GET is 405; JSON is 415; a body over ``MAX_BODY`` is 413; an unknown action 400 and
    an unknown target 404."""
    app = status_app(token=TOKEN)
    response = await call(app, "/status/actions", headers=AUTH)
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    json_post = await call(
        app, "/status/actions", "POST", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert json_post.status_code == 415
    big = await call(
        app, "/status/actions", "POST", headers={**FORM, **AUTH}, content=b"a" * (MAX_BODY + 1)
    )
    assert big.status_code == 413
    assert (await act(app, "explode", "ai_service")).status_code == 400
    assert (await act(app, "reset", "")).status_code == 400
    missing = await act(app, "reset", "never-made")
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_target")
    assert (await act(app, "disable", "never-made")).status_code == 404


async def test_refused_actions_are_logged_once_per_client_and_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bad guesses fold into one digest line rather than one line each."""
    app = status_app(token=TOKEN)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        for _ in range(5):
            await act(app, "reset", "x", headers={"Authorization": "Bearer wrong-guess"})
    lines = [r for r in caplog.records if "status page action refused" in r.getMessage()]
    assert len(lines) == 1
    assert "127.0.0.1" in lines[0].getMessage()


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"token": "short"}, "token"),
        ({"token": "has a space in it, sadly"}, "token"),
        ({"path": "status"}, "path"),
        ({"actions": "yes"}, "actions"),
        ({"public_detail": 1}, "public_detail"),
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"refresh": 0.1}, "refresh"),
        ({"refresh": "2"}, "refresh"),
        ({"title": ""}, "title"),
        ({"bulkheads": [1]}, "bulkheads"),
    ],
)
def test_bad_status_settings_are_refused(options: dict[str, Any], parameter: str) -> None:
    """Each bad setting is a ``ConfigError`` naming it; a token never appears in it."""
    for factory in (status_app, StatusApp):
        with pytest.raises(ConfigError) as caught:
            factory(**options)
        assert caught.value.parameter == parameter
        assert "a space in it" not in str(caught.value)


def test_the_repr_shows_the_settings_but_never_the_token() -> None:
    """``repr`` says what the page offers without showing the token."""
    shown = repr(status_app(token=TOKEN))
    assert TOKEN not in shown
    assert shown == (
        "<StatusApp path='/status' access=token, actions public_detail=False limit=50 refresh=2>"
    )
    assert "access=public" in repr(status_app())


@pytest.mark.parametrize(
    ("path", "root_path", "route", "base"),
    [
        ("/status", "", "page", "/status/"),
        ("/status/", "", "page", "/status/"),
        ("/status/state", "", "state", "/status/"),
        ("/status/actions", "", "actions", "/status/"),
        ("/ops/state", "/ops", "state", "/ops/"),  # a mount keeping the full path
        ("/state", "/ops", "state", "/ops/"),  # a mount passing the rest of the path
        ("/ops/status/state", "/ops", "state", "/ops/status/"),
        ("/status/other", "", None, "/status/"),
    ],
)
def test_a_request_path_is_located_below_the_page(
    path: str, root_path: str, route: str | None, base: str
) -> None:
    """``locate`` finds the route and the page's own URL path however the app is mounted."""
    assert status_app().locate(path, root_path) == (route, base)


async def test_an_action_that_fails_answers_503_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that cannot be reached during an action: 503 with the error, one log line."""
    found = breaker("ai_service", BreakerConfig.ai_operation)

    def unreachable() -> None:
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(CircuitBreaker, "reset", lambda self: unreachable())
    with caplog.at_level(logging.WARNING, logger="resilient"):
        response = await act(status_app(token=TOKEN), "reset", "ai_service")
    assert (response.status_code, response.json()["error"]) == (503, "action_failed")
    assert "store unreachable" in response.json()["message"]
    assert "status page action failed" in caplog.text
    assert found.mode.value == "closed"


async def test_without_a_token_the_page_has_no_operator_form() -> None:
    """The token field is offered only when a token is configured."""
    assert 'id="op-token"' not in (await call(status_app(), "/status/")).text
    assert 'id="op-token"' in (await call(status_app(token=TOKEN), "/status/")).text


def test_the_whole_page_answers_on_the_calling_thread_for_wsgi(fake_clock: FakeClock) -> None:
    """``answer_sync`` serves the page, ``state`` and actions without an event loop, with
    the same checks as the ASGI app."""
    found = breaker("ai_service", BreakerConfig.ai_operation)
    app = status_app(token=TOKEN)
    status, headers, body = app.answer_sync("GET", "/", {}, root_path="/status")
    assert status == 200
    assert ("content-type", "text/html; charset=utf-8") in headers
    assert b'data-base="/status/"' in body
    assert app.answer_sync("GET", "/status/nope", {})[0] == 404
    assert app.answer_sync("POST", "/status/state", {})[0] == 405
    assert app.answer_sync("GET", "/status/state", {"authorization": "Bearer nope"})[0] == 401
    state = json.loads(app.answer_sync("GET", "/status/state", {})[2])
    form = urlencode({"action": "force_open", "target": "ai_service", "csrf": state["csrf"]})
    asked = {"authorization": f"Bearer {TOKEN}", "content-type": FORM["Content-Type"]}
    refused = app.answer_sync(
        "POST", "/status/actions", {**asked, "authorization": ""}, form.encode()
    )
    assert refused[0] == 401
    done = app.answer_sync("POST", "/status/actions", asked, form.encode(), client="10.1.2.3")
    assert done[0] == 200
    assert json.loads(done[2])["who"] == "10.1.2.3"
    assert found.opened
    detail = json.loads(
        app.answer_sync("GET", "/status/state", {"authorization": f"Bearer {TOKEN}"})[2]
    )
    assert detail["report"]["breakers"]["listed"][0]["state"] == "forced_open"

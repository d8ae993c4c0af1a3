"""``resilient.http.AsyncClient``: the async twin of the client tests, on real loopback servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from http_servers import PORTAL_PAGE, TLS, Answer, ScriptedServer, filter_page, json_answer

import resilient
from resilient import correlation
from resilient.exceptions import CircuitOpenError
from resilient.http import (
    AsyncClient,
    CaptivePortalError,
    ConnectionFailedError,
    ContentFilteredError,
    HostUnavailableError,
    HTTPTimeoutError,
    RequestConfig,
    ResponseStatusError,
)
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


@pytest.fixture
async def client(server: ScriptedServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, tenant_id="tenant-9", verify=TLS) as made:
        yield made


async def test_success_with_tenant_and_correlation(
    server: ScriptedServer, client: AsyncClient
) -> None:
    """A 2xx answer comes back; the request carried the tenant and the context's ID."""
    server.script("/lessons/1", json_answer({"title": "Fractions"}))
    with correlation.use("async-cid"):
        response = await client.get("/lessons/1")
    assert isinstance(response, httpx.Response)
    assert response.json() == {"title": "Fractions"}
    headers = server.received[0].headers
    assert (headers["x-tenant-id"], headers["x-correlation-id"]) == ("tenant-9", "async-cid")


async def test_retry_after_is_honoured(
    fake_clock: FakeClock, server: ScriptedServer, client: AsyncClient
) -> None:
    """``429`` with ``Retry-After: 3`` waits 3 s (virtual) and tries again."""
    server.script("/a", Answer(429, headers={"Retry-After": "3"}), json_answer({"ok": 1}))
    assert (await client.get("/a")).json() == {"ok": 1}
    assert fake_clock.sleeps == [3.0]


async def test_a_reset_connection_is_retried(
    fake_clock: FakeClock, server: ScriptedServer, client: AsyncClient
) -> None:
    """A reset connection is retried and the second attempt answers."""
    server.script("/a", Answer(reset=True), json_answer({"ok": 1}))
    assert (await client.get("/a")).status_code == 200
    assert server.hits("/a") == 2


async def test_post_is_not_retried(
    fake_clock: FakeClock, server: ScriptedServer, client: AsyncClient
) -> None:
    """A POST without an ``Idempotency-Key`` is sent once."""
    server.script("/a", Answer(502), json_answer({}))
    with pytest.raises(ResponseStatusError):
        await client.post("/a", json={"x": 1})
    assert server.hits("/a") == 1


async def test_hostile_answers(server: ScriptedServer, client: AsyncClient) -> None:
    """Portals and block pages raise their own errors, as in the sync client."""
    server.script("/portal", Answer(200, PORTAL_PAGE, "text/html"))
    server.script("/blocked", Answer(403, filter_page("GoGuardian"), "text/html"))
    with pytest.raises(CaptivePortalError):
        await client.get("/portal")
    with pytest.raises(ContentFilteredError):
        await client.get("/blocked")


async def test_the_breaker_opens_for_the_host(
    fake_clock: FakeClock, server: ScriptedServer
) -> None:
    """Three failures open a ``critical`` breaker; the fourth request is refused locally."""
    server.script("/a", Answer(500))
    async with AsyncClient(
        server.url, breaker=resilient.BreakerConfig.critical, verify=TLS
    ) as client:
        for _ in range(3):
            with pytest.raises(ResponseStatusError):
                await client.get("/a")
        with pytest.raises(HostUnavailableError) as caught:
            await client.get("/a")
    assert isinstance(caught.value, CircuitOpenError)
    assert server.hits("/a") == 3


async def test_a_refused_connection_is_a_network_error(fake_clock: FakeClock) -> None:
    """Nothing listening: ``ConnectionFailedError`` after the configured attempts."""
    from http_servers import free_port

    async with AsyncClient(f"http://127.0.0.1:{free_port()}", verify=TLS) as client:
        with pytest.raises(ConnectionFailedError) as caught:
            await client.get("/a", config=RequestConfig.quick)
    assert caught.value.__notes__ == ["resilient.http gave up after 2 attempts"]


async def test_metrics(fake_clock: FakeClock, server: ScriptedServer, client: AsyncClient) -> None:
    """Async requests feed the same metrics as sync ones."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    server.script("/a", Answer(503), json_answer({}))
    await client.get("/a")
    assert sink.counter("client_http_errors_total", type="5xx") == 1
    assert len(sink.timings("request_latency_ms")) == 1
    assert sink.gauge_value("active_requests") == 0


@pytest.mark.realtime
async def test_the_total_budget_cancels_a_slow_answer(server: ScriptedServer) -> None:
    """The event loop ends the request at its total budget, however long the read timeout."""
    server.script("/slow", Answer(delay=2.0))
    config = RequestConfig(receive=30, total=0.2, retry=resilient.RetryConfig.never)
    async with AsyncClient(server.url, config=config, verify=TLS) as client:
        started = time.monotonic()
        with pytest.raises(HTTPTimeoutError) as caught:
            await client.get("/slow")
    assert caught.value.phase == "total"
    assert time.monotonic() - started < 0.5


@pytest.mark.realtime
async def test_the_enclosing_deadline_wins_over_ai_operation(server: ScriptedServer) -> None:
    """``ai_operation`` (45 s) under ``@timeout(0.2)`` never runs past 0.2 s."""
    server.script("/ai/generate", Answer(delay=2.0))
    async with AsyncClient(server.url, config="ai_operation", verify=TLS) as client:

        @resilient.timeout(0.2)
        async def generate() -> httpx.Response:
            return await client.post("/ai/generate", json={"prompt": "hi"})

        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await generate()
        assert time.monotonic() - started < 0.4


@pytest.mark.realtime
async def test_concurrent_requests_share_one_client(server: ScriptedServer) -> None:
    """Twenty concurrent requests through one client all succeed."""
    server.script("/a", Answer(delay=0.02))
    async with AsyncClient(server.url, verify=TLS) as client:
        responses = await asyncio.gather(*(client.get("/a") for _ in range(20)))
    assert {r.status_code for r in responses} == {200}

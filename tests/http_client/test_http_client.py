"""``resilient.http.Client`` against real loopback servers: headers, retries, breakers, metrics."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from http_servers import TLS, Answer, ScriptedServer, free_port, json_answer

import resilient
from resilient import correlation
from resilient.exceptions import CircuitOpenError, ConfigError, TimeoutExceededError
from resilient.http import (
    AsyncClient,
    Client,
    ConnectionFailedError,
    HostUnavailableError,
    HTTPTimeoutError,
    RequestConfig,
    ResponseStatusError,
    parse_retry_after,
)
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[Client]:
    with Client(server.url, verify=TLS, tenant_id="tenant-123") as made:
        yield made


# --- the happy path -----------------------------------------------------------------------


def test_success_returns_the_httpx_response(server: ScriptedServer, client: Client) -> None:
    """A 2xx answer comes back as the ``httpx.Response`` after one request."""
    server.script("/lessons/123", json_answer({"title": "Photosynthesis"}))
    response = client.get("/lessons/123")
    assert isinstance(response, httpx.Response)
    assert response.json() == {"title": "Photosynthesis"}
    assert server.hits("/lessons/123") == 1


def test_every_request_carries_tenant_and_a_fresh_correlation_id(
    server: ScriptedServer, client: Client
) -> None:
    """Each request gets ``X-Tenant-ID``, JSON ``Accept`` and its own ``X-Correlation-ID``."""
    server.script("/a", json_answer({}))
    client.get("/a")
    client.get("/a")
    first, second = (r.headers for r in server.received)
    assert first["x-tenant-id"] == "tenant-123"
    assert first["accept"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", first["x-correlation-id"])
    assert first["x-correlation-id"] != second["x-correlation-id"]


def test_the_current_correlation_id_is_forwarded(server: ScriptedServer, client: Client) -> None:
    """Inside ``correlation.use`` the request carries the context's ID."""
    server.script("/a", json_answer({}))
    with correlation.use("incoming-request-7"):
        client.get("/a")
    assert server.received[0].headers["x-correlation-id"] == "incoming-request-7"


def test_an_explicit_correlation_header_is_kept(server: ScriptedServer, client: Client) -> None:
    """A caller's own ``X-Correlation-ID`` header is sent unchanged."""
    server.script("/a", json_answer({}))
    client.get("/a", headers={"X-Correlation-ID": "mine"})
    assert server.received[0].headers["x-correlation-id"] == "mine"


def test_bodies_and_methods_reach_the_server(server: ScriptedServer, client: Client) -> None:
    """``post``/``put``/``patch``/``delete``/``head``/``options`` send what httpx would."""
    for path in ("/p", "/u", "/pa", "/d", "/h", "/o"):
        server.script(path, json_answer({"ok": True}))
    client.post("/p", json={"prompt": "Explain photosynthesis"})
    client.put("/u", content=b"raw")
    client.patch("/pa", data={"k": "v"})
    client.delete("/d")
    client.head("/h")
    client.options("/o", params={"q": "1"})
    methods = [(r.method, r.path) for r in server.received]
    assert methods == [
        ("POST", "/p"),
        ("PUT", "/u"),
        ("PATCH", "/pa"),
        ("DELETE", "/d"),
        ("HEAD", "/h"),
        ("OPTIONS", "/o"),
    ]
    # httpx's own encoding of the same JSON (compact from httpx 0.28, spaced before).
    sent = httpx.Request("POST", server.url, json={"prompt": "Explain photosynthesis"}).read()
    assert server.received[0].body == sent


# --- retries ------------------------------------------------------------------------------


def test_503_with_retry_after_seconds_is_retried_after_that_wait(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """``Retry-After: 2`` makes the client wait exactly 2 s before the next attempt."""
    server.script("/a", Answer(503, headers={"Retry-After": "2"}), json_answer({"ok": 1}))
    assert client.get("/a").json() == {"ok": 1}
    assert fake_clock.sleeps == [2.0]
    assert server.hits("/a") == 2


def test_429_with_an_http_date_is_honoured(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """A ``Retry-After`` HTTP-date is turned into the seconds until that moment."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    server.script("/a", Answer(429, headers={"Retry-After": when}), json_answer({"ok": 1}))
    client.get("/a")
    (waited,) = fake_clock.sleeps
    assert 2.5 < waited <= 4.0


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_transient_statuses_are_retried(
    fake_clock: FakeClock, server: ScriptedServer, client: Client, status: int
) -> None:
    """408, 429, 502, 503 and 504 are retried with the config's backoff."""
    server.script("/a", Answer(status), Answer(status), json_answer({"ok": 1}))
    assert client.get("/a").status_code == 200
    assert server.hits("/a") == 3
    assert len(fake_clock.sleeps) == 2
    assert 0.4 <= fake_clock.sleeps[0] <= 0.6  # standard: 0.5 s +- 20 %


def test_500_is_not_retried(fake_clock: FakeClock, server: ScriptedServer, client: Client) -> None:
    """A plain 500 fails at once with ``ResponseStatusError``; the request is not repeated."""
    server.script("/a", Answer(500))
    with pytest.raises(ResponseStatusError) as caught:
        client.get("/a")
    assert caught.value.status_code == 500
    assert caught.value.kind == "5xx"
    assert server.hits("/a") == 1


def test_a_reset_connection_is_retried(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """A connection reset by the peer is retried, and the retry gets the answer."""
    server.script("/a", Answer(reset=True), json_answer({"ok": 1}))
    assert client.get("/a").json() == {"ok": 1}
    assert server.hits("/a") == 2


def test_a_refused_connection_gives_up_with_the_correlation_id(fake_clock: FakeClock) -> None:
    """Nothing listening: three attempts, then ``ConnectionFailedError`` with the request ID."""
    url = f"http://127.0.0.1:{free_port()}"
    with (
        Client(url, verify=TLS) as client,
        correlation.use("cid-1"),
        pytest.raises(ConnectionFailedError) as caught,
    ):
        client.get("/a")
    error = caught.value
    assert error.correlation_id == "cid-1"
    assert "cid-1" in str(error)
    assert error.kind == "connect"
    assert isinstance(error, ConnectionError)
    assert error.__notes__ == ["resilient.http gave up after 3 attempts"]
    assert len(fake_clock.sleeps) == 2


def test_post_is_not_retried_without_an_idempotency_key(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """A POST failing with 503 is not repeated: it may have had an effect."""
    server.script("/a", Answer(503), json_answer({"ok": 1}))
    with pytest.raises(ResponseStatusError) as caught:
        client.post("/a", json={})
    assert server.hits("/a") == 1
    assert "not idempotent" in caught.value.__notes__[0]


def test_post_with_an_idempotency_key_is_retried(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """An ``Idempotency-Key`` header makes a POST safe to send again."""
    server.script("/a", Answer(503), json_answer({"ok": 1}))
    response = client.post("/a", json={}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200
    assert [r.headers["idempotency-key"] for r in server.received] == ["k-1", "k-1"]


def test_a_retry_after_past_the_deadline_gives_up_at_once(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """A server asking for 60 s when 10 s remain gets the error now, with the hint on it."""
    server.script("/a", Answer(503, headers={"Retry-After": "60"}))
    with pytest.raises(ResponseStatusError) as caught:
        client.get("/a")
    assert fake_clock.sleeps == []
    assert caught.value.retry_after == 60.0
    assert "does not fit" in caught.value.__notes__[0]


def test_the_status_error_is_retried_by_an_outer_retry_with_its_hint(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """``@resilient.retry`` around the client waits the server's ``Retry-After``."""
    server.script("/a", Answer(503, headers={"Retry-After": "30"}), json_answer({"ok": 1}))

    @resilient.retry(attempts=2, max_delay=60)
    def fetch() -> int:
        return client.get("/a", config=RequestConfig.quick).status_code

    assert fetch() == 200
    assert fake_clock.sleeps == [30.0]


def test_read_timeouts_are_retried_then_reported(server: ScriptedServer) -> None:
    """A server slower than ``receive`` times out each attempt; the error says which phase."""
    server.script("/slow", Answer(delay=0.5))
    config = RequestConfig(receive=0.05, retry=resilient.RetryConfig(attempts=2, initial_delay=0))
    with (
        Client(server.url, verify=TLS, config=config) as client,
        pytest.raises(HTTPTimeoutError) as caught,
    ):
        client.get("/slow")
    assert caught.value.phase == "read"
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, TimeoutExceededError)
    assert server.hits("/slow") == 2


def test_retry_log_records_carry_the_correlation_id(
    fake_clock: FakeClock,
    server: ScriptedServer,
    client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client's log records name the request's correlation ID."""
    server.script("/a", Answer(503), json_answer({}))
    with caplog.at_level(logging.INFO, logger="resilient.http"), correlation.use("cid-log"):
        client.get("/a")
    (record,) = [r for r in caplog.records if r.name == "resilient.http"]
    assert record.correlation_id == "cid-log"  # type: ignore[attr-defined]
    assert "retrying" in record.getMessage()


def test_a_made_up_id_is_current_while_the_request_runs(
    server: ScriptedServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx's own log records carry the ID the request was sent with, through the filter."""
    server.script("/a", json_answer({}))
    log_filter = correlation.CorrelationIdFilter()
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO, logger="httpx"):
            client.get("/a")
    finally:
        caplog.handler.removeFilter(log_filter)
    (record,) = [r for r in caplog.records if r.name == "httpx"]
    assert record.correlation_id == server.received[0].headers["x-correlation-id"]  # type: ignore[attr-defined]
    assert correlation.current() is None


# --- the breaker per host -----------------------------------------------------------------


def test_one_breaker_per_host_opens_and_rejects_without_sending(
    fake_clock: FakeClock, server: ScriptedServer
) -> None:
    """Five failing requests open the host's breaker; the next is refused locally."""
    server.script("/a", Answer(500))
    with Client(server.url, verify=TLS) as client:
        for _ in range(5):
            with pytest.raises(ResponseStatusError):
                client.get("/a")
        with pytest.raises(HostUnavailableError) as caught:
            client.get("/a")
    assert server.hits("/a") == 5
    error = caught.value
    assert isinstance(error, CircuitOpenError)
    assert error.name == f"127.0.0.1:{server.port}"
    assert error.retry_after == pytest.approx(30.0)
    assert error.correlation_id in str(error)
    assert resilient.compat.CircuitBreakerRegistry.instance.get(error.name).opened


def test_client_errors_do_not_trip_the_breaker(
    fake_clock: FakeClock, server: ScriptedServer
) -> None:
    """404s are the caller's problem, not the host's: the breaker stays closed."""
    server.script("/missing", Answer(404))
    with Client(server.url, verify=TLS, breaker=resilient.BreakerConfig.critical) as client:
        for _ in range(5):
            with pytest.raises(ResponseStatusError):
                client.get("/missing")
    assert not resilient.compat.CircuitBreakerRegistry.instance.get(
        f"127.0.0.1:{server.port}"
    ).opened


def test_clients_of_one_host_share_its_breaker(
    fake_clock: FakeClock, server: ScriptedServer
) -> None:
    """Two clients talking to the same host see one breaker state."""
    server.script("/a", Answer(500))
    config = resilient.BreakerConfig.critical
    with (
        Client(server.url, verify=TLS, breaker=config) as one,
        Client(server.url, verify=TLS, breaker=config) as two,
    ):
        for _ in range(3):
            with pytest.raises(ResponseStatusError):
                one.get("/a")
        with pytest.raises(HostUnavailableError):
            two.get("/a")


def test_no_breaker_when_asked(fake_clock: FakeClock, server: ScriptedServer) -> None:
    """``breaker=None`` sends every request, however many failed."""
    server.script("/a", Answer(500))
    with Client(server.url, verify=TLS, breaker=None) as client:
        for _ in range(8):
            with pytest.raises(ResponseStatusError):
                client.get("/a")
    assert server.hits("/a") == 8


# --- metrics ------------------------------------------------------------------------------


def test_metrics_errors_latency_and_active_requests(
    fake_clock: FakeClock, server: ScriptedServer, client: Client
) -> None:
    """Errors are counted by type, latencies timed per host, the active gauge returns to 0."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    server.script("/a", Answer(503), json_answer({}))
    server.script("/missing", Answer(404))
    client.get("/a")
    with pytest.raises(ResponseStatusError):
        client.get("/missing")
    assert sink.counter("client_http_errors_total", type="5xx") == 1
    assert sink.counter("client_http_errors_total", type="4xx") == 1
    assert sink.counter("retry_attempts_total") == 1
    assert len(sink.timings("request_latency_ms", endpoint=f"127.0.0.1:{server.port}")) == 2
    assert sink.gauge_value("active_requests") == 0


# --- time budgets -------------------------------------------------------------------------


@pytest.mark.realtime
def test_the_enclosing_deadline_wins_over_the_preset(server: ScriptedServer) -> None:
    """``ai_operation`` (45 s) inside ``@timeout(0.2)`` stops at the 0.2 s deadline."""
    server.script("/ai/generate", Answer(delay=2.0))

    with Client(server.url, verify=TLS, config=RequestConfig.ai_operation) as client:

        @resilient.timeout(0.2)
        def generate() -> httpx.Response:
            assert (resilient.remaining() or 0) <= 0.2
            return client.post("/ai/generate", json={"prompt": "hi"})

        started = time.monotonic()
        with pytest.raises(TimeoutError):
            generate()
        assert time.monotonic() - started < 0.5


@pytest.mark.realtime
def test_a_trickling_body_is_cut_at_the_total_budget(server: ScriptedServer) -> None:
    """A server dripping one byte every 20 ms cannot stretch a 0.2 s budget to seconds."""
    server.script("/drip", Answer(body=b"x" * 200, trickle=0.02))
    config = RequestConfig(total=0.2, retry=resilient.RetryConfig.never)
    with Client(server.url, verify=TLS, config=config) as client:
        started = time.monotonic()
        with pytest.raises(HTTPTimeoutError) as caught:
            client.get("/drip")
        elapsed = time.monotonic() - started
    assert caught.value.phase == "total"
    assert 0.18 < elapsed < 0.7


def test_no_time_left_fails_before_sending(server: ScriptedServer, client: Client) -> None:
    """A deadline already passed fails the request without touching the network."""
    from resilient._runtime import deadline as _deadline

    token = _deadline.enter(time.monotonic() - 1)
    try:
        with pytest.raises(HTTPTimeoutError) as caught:
            client.get("/a")
    finally:
        _deadline.leave(token)
    assert caught.value.phase == "total"
    assert server.received == []


# --- configuration ------------------------------------------------------------------------


def test_presets_follow_the_seed_table() -> None:
    """The presets carry the seed's connect / receive / total timeouts."""
    table = {
        name: (c.connect, c.receive, c.total)
        for name in RequestConfig.names
        for c in [RequestConfig.get(name)]
    }
    assert table == {
        "quick": (3.0, 5.0, 5.0),
        "standard": (5.0, 10.0, 10.0),
        "heavy": (5.0, 30.0, 30.0),
        "ai_operation": (5.0, 45.0, 45.0),
    }
    assert RequestConfig.standard.retry == resilient.RetryConfig.standard


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: Client("ftp://example.org"), "base_url"),
        (lambda: Client(42), "base_url"),  # type: ignore[arg-type]
        (lambda: Client(tenant_id=""), "tenant_id"),
        (lambda: Client(config="lightning"), "config"),
        (lambda: Client(breaker=3), "breaker"),  # type: ignore[arg-type]
        (lambda: Client(timeout=3), "timeout"),
        (lambda: Client(trusted_hosts="portal.example"), "trusted_hosts"),
        (lambda: RequestConfig(connect=-1), "connect"),
        (lambda: RequestConfig(total=float("nan")), "total"),
        (lambda: RequestConfig(retry="sometimes"), "retry"),  # type: ignore[arg-type]
        (lambda: RequestConfig(retry_statuses=frozenset({700})), "retry_statuses"),
        (lambda: RequestConfig.standard.replace(colour="red"), "colour"),
    ],
)
def test_bad_configuration_is_refused_at_construction(build: object, parameter: str) -> None:
    """Bad input raises ``ConfigError`` naming the parameter, before any request."""
    with pytest.raises(ConfigError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.parameter == parameter


def test_a_per_request_timeout_argument_is_refused(client: Client) -> None:
    """Timeouts come from the config; httpx's ``timeout=`` would bypass the budget."""
    with pytest.raises(ConfigError, match="timeout"):
        client.get("/a", timeout=3)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 1.5 ", 1.5), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    """Delta-seconds parse as numbers (never negative); garbage is ignored."""
    assert parse_retry_after(header) == seconds


def test_repr_shows_the_configuration_and_breakers(server: ScriptedServer, client: Client) -> None:
    """The client's repr names its base URL, preset, tenant and host breakers."""
    text = repr(client)
    assert f"base_url='{server.url}'" in text
    assert "config='standard'" in text
    assert "tenant_id='tenant-123'" in text
    assert f"'127.0.0.1:{server.port}' CLOSED" in text


# --- Retry-After is honoured up to max_retry_after ----------------------------------------


@pytest.mark.parametrize("kind", [Client, AsyncClient])
async def test_a_retry_after_beyond_max_retry_after_ends_the_retries(
    fake_clock: FakeClock, server: ScriptedServer, kind: type[Client | AsyncClient]
) -> None:
    """With budget to spare, a 100 s ``Retry-After`` over a 5 s cap is not waited: one try."""
    server.script("/a", Answer(503, headers={"Retry-After": "100"}), json_answer({"ok": 1}))
    config = RequestConfig(total=1000.0, retry=resilient.RetryConfig(max_retry_after=5.0))
    client = kind(server.url, config=config, verify=TLS)

    async def get() -> object:
        return await client.get("/a") if isinstance(client, AsyncClient) else client.get("/a")

    try:
        with pytest.raises(ResponseStatusError) as caught:
            await get()
    finally:
        await client.aclose() if isinstance(client, AsyncClient) else client.close()
    assert fake_clock.sleeps == []
    assert server.hits("/a") == 1
    assert caught.value.retry_after == 100.0
    assert "max_retry_after=5s" in caught.value.__notes__[0]


def test_a_retry_after_within_max_retry_after_is_waited_in_full(
    fake_clock: FakeClock, server: ScriptedServer
) -> None:
    """A ``Retry-After`` at the cap is waited as asked (``max_delay`` does not cut it)."""
    server.script("/a", Answer(503, headers={"Retry-After": "5"}), json_answer({"ok": 1}))
    retry = resilient.RetryConfig(max_delay=1.0, max_retry_after=5.0)
    with Client(server.url, config=RequestConfig(total=60.0, retry=retry), verify=TLS) as client:
        assert client.get("/a").json() == {"ok": 1}
    assert fake_clock.sleeps == [5.0]

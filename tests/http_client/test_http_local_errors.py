"""A fault of the request itself never counts against the host: real loopback servers.

Each test runs the sync ``Client`` and the ``AsyncClient`` through the same steps
(``send`` awaits the async client), so the twins cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from http_servers import TLS, Answer, ScriptedServer, json_answer

import resilient
from resilient import correlation
from resilient.exceptions import ConfigError
from resilient.http import (
    AsyncClient,
    Client,
    HostUnavailableError,
    LocalRequestError,
    ResponseStatusError,
)
from resilient.metrics import MemorySink
from resilient.testing import FakeClock

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(params=["sync", "async"])
async def client(request: pytest.FixtureRequest, server: ScriptedServer) -> AsyncIterator[Any]:
    """A ``Client`` or an ``AsyncClient`` on the server, with the default breaker (5 failures)."""
    if request.param == "sync":
        with Client(server.url, verify=TLS) as made:
            yield made
    else:
        async with AsyncClient(server.url, verify=TLS) as amade:
            yield amade


async def send(client: Client | AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """``client.get(url)`` for either client."""
    if isinstance(client, AsyncClient):
        return await client.get(url, **kwargs)
    return client.get(url, **kwargs)


def host_breaker(server: ScriptedServer) -> resilient.CircuitBreaker:
    return resilient.compat.CircuitBreakerRegistry.instance.get(f"127.0.0.1:{server.port}")


# --- correlation IDs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "invalid",
    [
        "abc\r\nX-Injected: 1",
        "line\nfeed",
        "has space",
        "caf\u00e9",
        "",
        "x" * 129,
        "tab\there",
        "nul\x00",
    ],
)
async def test_an_invalid_current_id_is_replaced_and_the_request_succeeds(
    fake_clock: FakeClock,
    server: ScriptedServer,
    client: Client | AsyncClient,
    invalid: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A current ID that cannot be a header value goes out as a fresh ID, logged once."""
    server.script("/a", json_answer({}))
    with caplog.at_level(logging.WARNING, logger="resilient"), correlation.use(invalid):
        for _ in range(7):
            assert (await send(client, "/a")).status_code == 200
    sent = [r.headers["x-correlation-id"] for r in server.received]
    assert len(sent) == 7
    assert all(HEX32.fullmatch(cid) for cid in sent)
    assert "x-injected" not in server.received[0].headers
    lines = [r.getMessage() for r in caplog.records if "correlation ID replaced" in r.getMessage()]
    assert len(lines) == 1
    assert "\n" not in lines[0]
    assert host_breaker(server).failures == 0


@pytest.mark.parametrize("valid", ["x" * 128, "!#$%&'*+-.^_`|~(){}[]<>/\\?=@;:\"", "a"])
async def test_a_valid_current_id_is_sent_unchanged(
    server: ScriptedServer, client: Client | AsyncClient, valid: str
) -> None:
    """Up to 128 visible ASCII characters go out exactly as they are."""
    server.script("/a", json_answer({}))
    with correlation.use(valid):
        await send(client, "/a")
    assert server.received[0].headers["x-correlation-id"] == valid


async def test_an_invalid_explicit_id_header_is_replaced(
    server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """An ``X-Correlation-ID`` passed in ``headers=`` is checked like the current one."""
    server.script("/a", json_answer({}))
    await send(client, "/a", headers={"X-Correlation-ID": "a b"})
    assert HEX32.fullmatch(server.received[0].headers["x-correlation-id"])


async def test_the_replacement_id_is_current_while_the_request_runs(
    server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """The error of a request sent with a replaced ID names the ID the server saw."""
    server.script("/a", Answer(404))
    with correlation.use("bad id"), pytest.raises(ResponseStatusError) as caught:
        await send(client, "/a")
    assert caught.value.correlation_id == server.received[0].headers["x-correlation-id"]
    assert HEX32.fullmatch(caught.value.correlation_id)


# --- local errors never count against the host --------------------------------------------


async def test_an_invalid_header_never_trips_the_host_breaker(
    fake_clock: FakeClock, server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """Ten requests with a CR/LF header fail locally; valid requests still reach the host."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    server.script("/a", json_answer({"ok": 1}))
    await send(client, "/a")
    for _ in range(10):
        with pytest.raises(LocalRequestError) as caught:
            await send(client, "/a", headers={"X-Trace": "a\r\nInjected: 1"})
        assert isinstance(caught.value.__cause__, httpx.LocalProtocolError)
        assert caught.value.kind == "local"
        assert not getattr(caught.value, "__notes__", None)  # not retried: no retry note
    assert (await send(client, "/a")).json() == {"ok": 1}
    assert server.hits("/a") == 2
    assert fake_clock.sleeps == []
    breaker = host_breaker(server)
    assert breaker.failures == 0
    assert not breaker.opened
    assert sink.counter("client_http_errors_total") == 0


async def test_an_unsupported_protocol_is_the_caller_s_error(
    fake_clock: FakeClock, client: Client | AsyncClient
) -> None:
    """``ftp://`` fails as ``LocalRequestError`` and makes no breaker for its host."""
    for _ in range(6):
        with pytest.raises(LocalRequestError) as caught:
            await send(client, "ftp://files.example/report.csv")
        assert isinstance(caught.value.__cause__, httpx.UnsupportedProtocol)
    assert "files.example" not in resilient.compat.CircuitBreakerRegistry.instance


@pytest.mark.parametrize("kind", [Client, AsyncClient])
async def test_a_relative_url_without_a_base_url_is_a_local_error(
    kind: type[Client | AsyncClient],
) -> None:
    """No base URL and a relative path: ``LocalRequestError``, not a breaker named ''."""
    client = kind()
    try:
        with pytest.raises(LocalRequestError):
            await send(client, "/a")
    finally:
        await _close(client)


async def test_an_error_from_an_auth_flow_reaches_the_caller_uncounted(
    fake_clock: FakeClock, server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """The caller's own exception (here from ``auth=``) arrives unchanged; the host is fine."""
    server.script("/a", json_answer({}))
    problem = ValueError("no token configured")

    def auth(request: httpx.Request) -> httpx.Request:
        raise problem

    for _ in range(6):
        with pytest.raises(ValueError) as caught:
            await send(client, "/a", auth=auth)
        assert caught.value is problem
        assert caught.value.__context__ is None
    assert host_breaker(server).failures == 0
    assert (await send(client, "/a")).status_code == 200


async def test_a_local_error_frees_a_half_open_probe(
    fake_clock: FakeClock, server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """In half-open, a local error neither closes nor reopens: the next real call probes."""
    server.script("/a", Answer(500))
    for _ in range(5):
        with pytest.raises(ResponseStatusError):
            await send(client, "/a")
    with pytest.raises(HostUnavailableError):
        await send(client, "/a")
    fake_clock.advance(30.0)
    with pytest.raises(LocalRequestError):
        await send(client, "/a", headers={"X-Trace": "\n"})
    assert host_breaker(server).mode is resilient.BreakerMode.HALF_OPEN
    server.script("/a", json_answer({"ok": 1}))
    assert (await send(client, "/a")).json() == {"ok": 1}
    assert host_breaker(server).mode is resilient.BreakerMode.CLOSED
    assert server.hits("/a") == 6


async def test_a_real_host_failure_still_counts(
    fake_clock: FakeClock, server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """The other side of the rule: five 500s still open the breaker."""
    server.script("/a", Answer(500))
    for _ in range(5):
        with pytest.raises(ResponseStatusError):
            await send(client, "/a")
    with pytest.raises(HostUnavailableError):
        await send(client, "/a")


# --- tenant and headers are checked when the client is made -------------------------------


@pytest.mark.parametrize("kind", [Client, AsyncClient])
@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"tenant_id": "t-1\r\nX-Admin: yes"}, "tenant_id"),
        ({"tenant_id": "t-1\n"}, "tenant_id"),
        ({"tenant_id": "t\u00e9"}, "tenant_id"),
        ({"tenant_id": " t-1"}, "tenant_id"),
        ({"tenant_id": "t\x00"}, "tenant_id"),
        ({"headers": {"X-Api-Key": "k\r\nX-Admin: yes"}}, "headers"),
        ({"headers": {"X-Api-Key": "caf\u00e9"}}, "headers"),
        ({"headers": {"X-Api-Key": "k\x7f"}}, "headers"),
        ({"headers": {"X-Api-Key": 3}}, "headers"),
        ({"headers": {"Bad Name": "v"}}, "headers"),
        ({"headers": {"X-A\n": "v"}}, "headers"),
        ({"headers": {"": "v"}}, "headers"),
        ({"headers": [("X-A", "v")]}, "headers"),
    ],
)
def test_unsendable_tenant_or_headers_are_refused_at_construction(
    kind: type[Client | AsyncClient], options: dict[str, Any], parameter: str
) -> None:
    """CR/LF, control or non-ASCII characters in ``tenant_id``/``headers``: ``ConfigError``."""
    with pytest.raises(ConfigError) as caught:
        kind("http://127.0.0.1:1", **options)
    assert caught.value.parameter == parameter


@pytest.mark.parametrize("kind", [Client, AsyncClient])
def test_sendable_headers_are_accepted(kind: type[Client | AsyncClient]) -> None:
    """Inner spaces and tabs, empty values and bytes values are valid headers."""
    made = kind(
        "http://127.0.0.1:1",
        tenant_id="tenant 7",
        headers={"X-A": "one two\tthree", "X-Empty": "", "X-Bytes": b"caf\xe9"},  # type: ignore[dict-item]
    )
    assert made.headers["X-Tenant-ID"] == "tenant 7"
    asyncio.run(_close(made))


async def _close(client: Client | AsyncClient) -> None:
    if isinstance(client, AsyncClient):
        await client.aclose()
    else:
        client.close()


# --- only known local errors are local; a transport's own errors still count --------------


class VendorFaultError(Exception):
    """An error type a third-party transport raises for a fault of the remote side."""


class FlakyTransport(httpx.BaseTransport):
    """The real loopback transport, raising ``VendorFaultError`` for the first ``faults`` calls."""

    def __init__(self, faults: int) -> None:
        self.inner = httpx.HTTPTransport(verify=TLS)
        self.faults = faults

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.faults:
            self.faults -= 1
            raise VendorFaultError("upstream proxy refused")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncFlakyTransport(httpx.AsyncBaseTransport):
    """The async twin of ``FlakyTransport``."""

    def __init__(self, faults: int) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=TLS)
        self.faults = faults

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.faults:
            self.faults -= 1
            raise VendorFaultError("upstream proxy refused")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def flaky_client(kind: str, server: ScriptedServer, faults: int, **options: Any) -> Any:
    """A client whose transport fails ``faults`` times, on a breaker two failures open."""
    breaker = resilient.BreakerConfig(failure_threshold=2)
    if kind == "sync":
        return Client(server.url, breaker=breaker, transport=FlakyTransport(faults), **options)
    return AsyncClient(
        server.url, breaker=breaker, transport=AsyncFlakyTransport(faults), **options
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_unknown_error_from_the_transport_counts_against_the_host(
    fake_clock: FakeClock, server: ScriptedServer, kind: str
) -> None:
    """A transport's own error type reaches the caller unchanged and opens the breaker."""
    server.script("/a", json_answer({"ok": 1}))
    client = flaky_client(kind, server, faults=5)
    try:
        for _ in range(2):
            with pytest.raises(VendorFaultError):
                await send(client, "/a")
        with pytest.raises(HostUnavailableError):
            await send(client, "/a")
        assert host_breaker(server).opened
        assert server.hits("/a") == 0
    finally:
        await _close(client)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_error_from_an_auth_flow_never_counts_even_beside_a_flaky_transport(
    fake_clock: FakeClock, server: ScriptedServer, kind: str
) -> None:
    """With the transport shimmed, an auth flow's own error still stays the caller's."""
    server.script("/a", json_answer({"ok": 1}))
    client = flaky_client(kind, server, faults=0)

    def auth(request: httpx.Request) -> httpx.Request:
        raise VendorFaultError("token cache corrupt")

    try:
        for _ in range(5):
            with pytest.raises(VendorFaultError, match="token cache"):
                await send(client, "/a", auth=auth)
        assert host_breaker(server).failures == 0
        assert (await send(client, "/a")).json() == {"ok": 1}
    finally:
        await _close(client)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("when", ["request", "response"])
async def test_an_error_from_an_event_hook_never_counts(
    fake_clock: FakeClock, server: ScriptedServer, kind: str, when: str
) -> None:
    """A request or response hook that raises: the caller gets its error; the host is fine."""
    server.script("/a", json_answer({"ok": 1}))
    problem = RuntimeError("hook bug")

    def hook(_: object) -> None:
        raise problem

    async def ahook(_: object) -> None:
        raise problem

    hooks = {when: [hook if kind == "sync" else ahook]}
    client = flaky_client(kind, server, faults=0, event_hooks=hooks)
    try:
        for _ in range(5):
            with pytest.raises(RuntimeError) as caught:
                await send(client, "/a")
            assert caught.value is problem
    finally:
        await _close(client)
    assert host_breaker(server).failures == 0
    assert not host_breaker(server).opened


async def test_an_unsendable_header_is_refused_before_the_breaker_is_asked(
    fake_clock: FakeClock, server: ScriptedServer, client: Client | AsyncClient
) -> None:
    """A CR/LF header fails in preparation: the breaker sees no call and emits no event."""
    server.script("/a", json_answer({"ok": 1}))
    await send(client, "/a")
    seen: list[object] = []
    host_breaker(server).add_listener(seen.append)
    for headers in ({"X-Trace": "a\r\nInjected: 1"}, [("X-Trace", "\x00")], {"X-A\n": "v"}):
        with pytest.raises(LocalRequestError) as caught:
            await send(client, "/a", headers=headers)
        assert isinstance(caught.value.__cause__, httpx.LocalProtocolError)
    assert seen == []
    assert server.hits("/a") == 1

"""Hostile networks: captive portals, content filters and proxies, served for real on loopback."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from http_servers import PORTAL_PAGE, TLS, Answer, ScriptedServer, filter_page, json_answer

import resilient
from resilient import correlation
from resilient._degradation import DegradationLevel, DegradationService
from resilient.http import (
    CaptivePortalError,
    Client,
    ContentFilteredError,
    RequestFailedError,
    ResponseStatusError,
    network_feature,
)
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[Client]:
    with Client(server.url, verify=TLS) as made:
        yield made


def _redirect(location: str) -> Answer:
    return Answer(302, b"", "text/html", {"Location": location})


# --- captive portals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (_redirect("http://login.schoolnet.example/portal?orig=/lessons"), "another host"),
        (Answer(200, PORTAL_PAGE, "text/html; charset=utf-8"), "HTML page where JSON"),
        (Answer(511, PORTAL_PAGE, "text/html"), "511"),
    ],
)
def test_captive_portals_are_recognised_and_not_retried(
    fake_clock: FakeClock, server: ScriptedServer, client: Client, answer: Answer, why: str
) -> None:
    """A cross-host redirect, HTML instead of JSON, or 511 raise ``CaptivePortalError`` once."""
    server.script("/lessons", answer)
    with correlation.use("cid-portal"), pytest.raises(CaptivePortalError) as caught:
        client.get("/lessons")
    assert why in str(caught.value)
    assert caught.value.correlation_id == "cid-portal"
    assert caught.value.response is not None
    assert server.hits("/lessons") == 1
    assert fake_clock.sleeps == []


def test_a_portal_redirect_names_where_it_went(server: ScriptedServer, client: Client) -> None:
    """``location`` is the portal's address, resolved against the request."""
    server.script("/a", _redirect("http://login.schoolnet.example/portal"))
    with pytest.raises(CaptivePortalError) as caught:
        client.get("/a")
    assert caught.value.location == "http://login.schoolnet.example/portal"


def test_a_followed_redirect_to_another_host_is_a_portal(
    server: ScriptedServer, client: Client
) -> None:
    """With ``follow_redirects=True`` the landing host is checked, not just the first answer."""
    with ScriptedServer() as portal:
        portal.script("/login", Answer(200, PORTAL_PAGE, "text/html"))
        server.script("/a", _redirect(portal.url.replace("127.0.0.1", "localhost") + "/login"))
        with pytest.raises(CaptivePortalError) as caught:
            client.get("/a", follow_redirects=True)
    assert "localhost" in str(caught.value)


def test_same_host_redirects_are_returned(server: ScriptedServer, client: Client) -> None:
    """A redirect within the same host is an ordinary 3xx answer."""
    server.script("/old", _redirect("/new"))
    response = client.get("/old")
    assert response.status_code == 302


def test_trusted_hosts_may_be_redirected_to(server: ScriptedServer) -> None:
    """Redirects to ``trusted_hosts`` (a CDN, say) are not portals."""
    server.script("/download", _redirect("https://cdn.example.org/file.pdf"))
    with Client(server.url, verify=TLS, trusted_hosts=["cdn.example.org"]) as client:
        assert client.get("/download").status_code == 302


def test_html_is_fine_when_html_was_asked_for(server: ScriptedServer, client: Client) -> None:
    """Only a request expecting JSON takes an HTML page for a portal."""
    server.script("/page", Answer(200, b"<html>lesson</html>", "text/html"))
    response = client.get("/page", headers={"Accept": "text/html"})
    assert response.text == "<html>lesson</html>"


def test_a_portal_is_counted_and_degrades_the_network_until_it_is_gone(
    server: ScriptedServer, client: Client
) -> None:
    """The portal counts as ``captive_portal``, makes ``network`` unavailable, then recovers."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    service = DegradationService.instance
    server.script("/a", Answer(200, PORTAL_PAGE, "text/html"), json_answer({"ok": 1}))
    with pytest.raises(CaptivePortalError):
        client.get("/a")
    assert sink.counter("client_http_errors_total", type="captive_portal") == 1
    assert not service.is_feature_available(network_feature())
    assert "captive portal" in (service.why_unavailable("network") or "")
    assert service.level == DegradationLevel.severe
    client.get("/a")  # signed in: a normal answer again
    assert service.is_feature_available("network")
    assert service.check() == DegradationLevel.none


def test_a_portal_does_not_trip_the_host_breaker(
    fake_clock: FakeClock, server: ScriptedServer
) -> None:
    """The portal is the network's doing: the host's breaker does not count it."""
    server.script("/a", Answer(511, PORTAL_PAGE, "text/html"))
    with Client(server.url, verify=TLS, breaker=resilient.BreakerConfig.critical) as client:
        for _ in range(4):
            with pytest.raises(CaptivePortalError):
                client.get("/a")
    assert server.hits("/a") == 4


# --- content filters ----------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["FortiGuard", "Lightspeed Systems", "Securly", "iboss"])
def test_filter_block_pages_are_their_own_error(
    server: ScriptedServer, client: Client, vendor: str
) -> None:
    """A 403 block page naming a filter vendor raises ``ContentFilteredError``."""
    server.script("/wiki", Answer(403, filter_page(vendor), "text/html"))
    with pytest.raises(ContentFilteredError) as caught:
        client.get("/wiki")
    assert caught.value.marker == vendor.lower().split()[0]
    assert caught.value.status_code == 403
    assert server.hits("/wiki") == 1


def test_a_block_page_with_200_is_a_filter_not_a_portal(
    server: ScriptedServer, client: Client
) -> None:
    """Filters that answer 200 with their block page are still told apart from portals."""
    server.script("/wiki", Answer(200, filter_page("Smoothwall"), "text/html"))
    with pytest.raises(ContentFilteredError):
        client.get("/wiki")


def test_451_and_anonymous_html_403_are_filtered(server: ScriptedServer, client: Client) -> None:
    """451, and an HTML 403 where JSON was expected, come from something in the middle."""
    server.script("/legal", Answer(451, b"<html>unavailable</html>", "text/html"))
    server.script("/waf", Answer(403, b"<html>Forbidden</html>", "text/html"))
    with pytest.raises(ContentFilteredError, match="status 451"):
        client.get("/legal")
    with pytest.raises(ContentFilteredError, match="HTML 403"):
        client.get("/waf")


def test_the_api_s_own_403_is_a_status_error(server: ScriptedServer, client: Client) -> None:
    """A JSON 403 from the API itself stays an ordinary ``ResponseStatusError``."""
    server.script("/admin", json_answer({"error": "forbidden"}, status=403))
    with pytest.raises(ResponseStatusError) as caught:
        client.get("/admin")
    assert not isinstance(caught.value, ContentFilteredError)


def test_filter_errors_are_counted(server: ScriptedServer, client: Client) -> None:
    """Block pages count as ``filtered`` in ``client_http_errors_total``."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    server.script("/wiki", Answer(403, filter_page(), "text/html"))
    with pytest.raises(ContentFilteredError):
        client.get("/wiki")
    assert sink.counter("client_http_errors_total", type="filtered") == 1


# --- proxies and errors -------------------------------------------------------------------


def test_proxies_come_from_the_environment(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY`` routes requests through the proxy, as httpx does."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    server.script("http://api.school.invalid/lessons", json_answer({"via": "proxy"}))
    with Client("http://api.school.invalid", verify=TLS) as client:
        assert client.get("/lessons").json() == {"via": "proxy"}
    assert server.received[0].headers["host"] == "api.school.invalid"


def test_errors_survive_pickling(server: ScriptedServer, client: Client) -> None:
    """Errors keep their fields across processes (``multiprocessing``, task queues)."""
    server.script("/a", Answer(200, PORTAL_PAGE, "text/html"))
    with pytest.raises(CaptivePortalError) as caught:
        client.get("/a")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, RequestFailedError)
    assert str(copy) == str(caught.value)
    assert copy.correlation_id == caught.value.correlation_id

"""The live status page served to a WSGI app (Flask under a real WSGI server): the page,
its state, and operator actions with the token, the CSRF token and a same-origin check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_servers import WSGIServer

from resilient._breaker.registry import CircuitBreakerRegistry
from resilient.asgi import status_app
from resilient.exceptions import ConfigError
from resilient.wsgi import StatusMiddleware, install

pytest.importorskip("flask")

from flask import Flask

pytestmark = pytest.mark.realtime

TOKEN = "a-long-operator-token-42"


@pytest.fixture
def site() -> Iterator[tuple[httpx.Client, WSGIServer]]:
    app = Flask("status-test")

    @app.route("/lessons")
    def lessons() -> str:
        return "lessons"

    install(app, status=status_app(token=TOKEN))
    with WSGIServer(app) as served, httpx.Client(base_url=served.url, timeout=5) as client:
        yield client, served


def test_the_page_and_its_state_are_served_and_other_paths_reach_the_app(
    site: tuple[httpx.Client, WSGIServer],
) -> None:
    """``/status/`` is the HTML page, ``/status/state`` its JSON; ``/lessons`` is Flask's."""
    client, _ = site
    CircuitBreakerRegistry.instance.get_or_create("ai_service").force_open()
    page = client.get("/status/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    state = client.get("/status/state").json()
    assert state["report"]["level"]["name"] == "moderate"  # the AI service is down
    assert client.get("/lessons").text == "lessons"


def test_an_operator_resets_a_breaker_and_a_stranger_cannot(
    site: tuple[httpx.Client, WSGIServer],
) -> None:
    """A same-origin POST with the token and the page's CSRF token resets the breaker;
    without the token it is refused with 401 and the breaker stays open."""
    client, served = site
    breaker = CircuitBreakerRegistry.instance.get_or_create("grading-api")
    breaker.force_open()
    csrf = client.get("/status/state").json()["csrf"]
    form = {"action": "reset", "target": "grading-api", "csrf": csrf, "who": "ana"}
    origin = {"Origin": served.url}
    refused = client.post("/status/actions", data=form, headers=origin)
    assert refused.status_code == 401
    assert breaker.opened
    done = client.post(
        "/status/actions",
        data=form,
        headers={**origin, "Authorization": f"Bearer {TOKEN}"},
    )
    assert done.status_code == 200, done.text
    assert not breaker.opened


def test_only_a_status_app_is_accepted() -> None:
    """Anything else as ``status`` is a ConfigError naming it."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return []

    with pytest.raises(ConfigError, match="status"):
        StatusMiddleware(app, status="page")  # type: ignore[arg-type]


def test_head_announces_the_length_of_the_page_not_zero(
    site: tuple[httpx.Client, WSGIServer],
) -> None:
    """``HEAD /status/`` under a real WSGI server carries the page's Content-Length (as
    ``GET`` would), not the ``0`` a server infers from an empty body."""
    client, _ = site
    length = len(client.get("/status/").content)
    head = client.head("/status/")
    assert head.status_code == 200
    assert abs(int(head.headers["content-length"]) - length) < 64

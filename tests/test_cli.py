"""The ``resilient`` command: clean help text, and ``status URL`` against a real server."""

from __future__ import annotations

import os
import pydoc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_servers import ScriptedServer, UvicornServer, WSGIServer, json_answer

import resilient as rs
from resilient.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "operator-token-0123456789"


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m resilient ARGS`` in a fresh interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "resilient", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [("--help",), ("demo", "--help"), ("status", "--help")])
def test_help_is_plain_text(args: tuple[str, ...]) -> None:
    """Each help text prints as plain text: no reStructuredText markup leaks into it."""
    done = run_command(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m resilient")
    assert "``" not in done.stdout
    assert ":func:" not in done.stdout
    assert ":class:" not in done.stdout


def test_help_lists_both_commands() -> None:
    """The top-level help names the demo and the status commands."""
    done = run_command("--help")
    assert "demo" in done.stdout
    assert "status" in done.stdout


def test_configure_help_shows_a_readable_default() -> None:
    """``help(resilient.configure)`` shows ``<unchanged>`` for a parameter left out, never
    an ``<object object at 0x...>``."""
    text = pydoc.render_doc(rs.configure, renderer=pydoc.plaintext)
    assert "object at 0x" not in text
    assert "metrics: 'MetricsSink | _Keep | None' = <unchanged>" in text


def test_configure_with_nothing_keeps_every_default() -> None:
    """``configure()`` with no argument changes nothing: the sentinel is never installed."""
    sink = rs.metrics.MemorySink()
    rs.configure(metrics=sink)
    assert rs.configure().metrics is sink


def fail_breaker(name: str) -> None:
    """Open the breaker ``name`` (threshold 1) with one failed call."""

    @rs.breaker(name, rs.BreakerConfig(failure_threshold=1))
    def call() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        call()


@pytest.fixture
def service() -> Iterator[UvicornServer]:
    """A Starlette app serving the status page at /status and the health app at /health,
    both guarded by ``TOKEN``, with one open and one closed breaker."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from resilient.asgi import HealthApp, status_app

    fail_breaker("payments")

    @rs.breaker("ai-generate")
    def generate() -> str:
        return "text"

    assert generate() == "text"
    app = Starlette(
        routes=[
            Mount("/status", status_app(token=TOKEN)),
            Mount("/health", HealthApp(token=TOKEN)),
        ]
    )
    with UvicornServer(app) as server:
        yield server


def lines_of(output: str) -> list[list[str]]:
    """The output's lines, each split into words."""
    return [line.split() for line in output.splitlines()]


def test_status_from_the_status_page_state(
    service: UvicornServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status URL/status/state --token`` prints the level, the health and one table row
    per breaker with its state and failures."""
    code = main(["status", f"{service.url}/status/state", "--token", TOKEN])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Degradation level: none (Full functionality; UI impact: Normal)\n")
    assert "\nHealth: " in out
    rows = lines_of(out)
    header = next(row for row in rows if row and row[0] == "BREAKER")
    assert header[:3] == ["BREAKER", "STATE", "FAILURES"]
    assert ["payments", "open", "1/1"] in [row[:3] for row in rows]
    assert ["ai-generate", "closed", "0/5"] in [row[:3] for row in rows]
    payments = next(row for row in rows if row and row[0] == "payments")
    assert payments[-1] == "ConnectionError"  # the last error's kind


def test_status_follows_the_page_address_to_its_state(
    service: UvicornServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The status page's own address (an HTML page) is followed to its ``/state``."""
    assert main(["status", f"{service.url}/status", "--token", TOKEN]) == 0
    out = capsys.readouterr().out
    assert ["payments", "open", "1/1"] in [row[:3] for row in lines_of(out)]


def test_status_from_the_health_detail(
    service: UvicornServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status URL/health --token`` prints the level, the readiness and the breakers from
    the health detail."""
    assert main(["status", f"{service.url}/health", "--token", TOKEN]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Degradation level: none (Full functionality; UI impact: Normal)\n")
    assert "readiness: ready" in out
    rows = [row[:2] for row in lines_of(out)]
    assert ["BREAKER", "STATE"] in rows
    assert ["payments", "open"] in rows
    assert ["ai-generate", "closed"] in rows


def test_status_from_a_wsgi_status_page(capsys: pytest.CaptureFixture[str]) -> None:
    """The status page a WSGI app serves (``resilient.wsgi.StatusMiddleware``) reads the
    same: the command prints its breakers."""
    from resilient.asgi import status_app
    from resilient.wsgi import StatusMiddleware

    def app(environ: object, start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [("content-type", "text/plain")])
        return [b"not here"]

    fail_breaker("payments")
    with WSGIServer(StatusMiddleware(app, status_app(token=TOKEN))) as server:
        assert main(["status", f"{server.url}/status/state", "--token", TOKEN]) == 0
    assert ["payments", "open", "1/1"] in [row[:3] for row in lines_of(capsys.readouterr().out)]


def test_status_reads_the_token_from_the_environment(
    service: UvicornServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``--token`` the command uses ``$RESILIENT_TOKEN``."""
    monkeypatch.setenv("RESILIENT_TOKEN", TOKEN)
    assert main(["status", f"{service.url}/status/state"]) == 0
    assert ["payments", "open", "1/1"] in [row[:3] for row in lines_of(capsys.readouterr().out)]


@pytest.mark.parametrize("path", ["/status/state", "/health"])
def test_status_without_the_token_prints_counts(
    service: UvicornServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    """Without the token the public view is printed as counts, never breaker names, with a
    hint to pass the token."""
    monkeypatch.delenv("RESILIENT_TOKEN", raising=False)
    assert main(["status", f"{service.url}{path}"]) == 0
    out = capsys.readouterr().out
    assert "Circuit breakers: 2 (1 open, 1 closed)" in out
    assert "--token" in out
    assert "payments" not in out


def test_status_of_an_unreachable_service_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL nothing answers on exits with 1 and says so on stderr."""
    with ScriptedServer() as server:
        url = f"{server.url}/status/state"
    assert main(["status", url, "--timeout", "2"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_status_of_another_json_endpoint_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON that is neither a status page's state nor a health body is refused (exit 1)."""
    with ScriptedServer() as server:
        server.script("/other", json_answer({"ok": True}))
        assert main(["status", f"{server.url}/other"]) == 1
    assert "neither a resilient status page" in capsys.readouterr().err


def test_status_with_a_wrong_token_exits_1(
    service: UvicornServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token the status page refuses exits with 1, saying the token was refused."""
    code = main(["status", f"{service.url}/status/state", "--token", "x" * 20])
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert "refused the token" in captured.err

"""Every script in examples/ runs to completion, as a reader would run it, in seconds.

Each example runs in a child process of its own (with this checkout's ``resilient`` first
on the path), under a time budget; its run time is printed. The FastAPI service also runs
under uvicorn and is asked over HTTP; the Redis fleet runs against the session's test
Redis server; the pytest example runs under pytest.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest
from processes import die_with_parent

pytestmark = pytest.mark.realtime

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BUDGET = 30.0  # seconds an example may take here (each takes a few on an idle machine)
STATUS_TOKEN = "example-operator-token-0123"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["STATUS_TOKEN"] = STATUS_TOKEN
    env.pop("RESILIENT_CHAOS", None)
    return env


@dataclass(frozen=True)
class Run:
    """One finished run of an example."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _run(*args: str) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLES,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=BUDGET,
        preexec_fn=die_with_parent,
    )
    return Run(args, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _pytest_args() -> tuple[str, ...]:
    installed = any(ep.value == "resilient_pytest" for ep in entry_points(group="pytest11"))
    plugin = () if installed else ("-p", "resilient_pytest")
    config = ("--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"))
    return ("-m", "pytest", *plugin, "-p", "no:cacheprovider", "-q", *config)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Future[Run]]]:
    """Every example script, run one after another in the background (one at a time, so
    each run time is its own) while the tests read those already done; each a future of
    its finished run."""
    from redis_server import missing, shared_server

    scripts: dict[str, tuple[str, ...]] = {
        "fastapi_service.py": ("fastapi_service.py",),
        "flaky_api_client.py": ("flaky_api_client.py",),
        "offline_outbox.py": ("offline_outbox.py",),
        "test_with_plugin.py": (*_pytest_args(), "test_with_plugin.py"),
    }
    if missing() is None:
        scripts["redis_fleet.py"] = ("redis_fleet.py", shared_server().url)
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield {name: pool.submit(_run, *args) for name, args in scripts.items()}


def finished(runs: dict[str, Future[Run]], name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The output of example ``name``; fails unless it exited 0 within the budget, and
    reports its run time."""
    if name not in runs:
        from redis_server import missing

        pytest.skip(missing() or f"{name} was not run")
    done = runs[name].result(timeout=BUDGET + 5)
    with capsys.disabled():
        print(f"\n    examples/{name} ran in {done.seconds:.2f} s", end=" ")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_fastapi_service_tour(
    runs: dict[str, Future[Run]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The service's own tour answers each endpoint as designed."""
    out = finished(runs, "fastapi_service.py", capsys)
    assert "GET /lessons/1 -> 200" in out
    assert '{"hint":"Try the worked example first."}' in out  # the slow answer fell back
    assert "POST /payments/10 -> 504 application/problem+json" in out
    assert "POST /payments/10 -> 503 application/problem+json" in out  # the breaker opened
    assert "GET /report -> 504" in out
    assert "GET /health -> 503" in out  # a critical breaker is open: not ready
    assert "answered tour-1" in out
    assert "GET /status/ -> 200 text/html" in out
    assert out.rstrip().endswith("tour done")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def uvicorn_service() -> Iterator[str]:
    """``uvicorn fastapi_service:app`` on a free loopback port; its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "fastapi_service:app", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=EXAMPLES,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + BUDGET
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"uvicorn exited: {process.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_fastapi_service_under_uvicorn(
    uvicorn_service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Served by uvicorn, the app answers its routes, budgets, health, status page and IDs."""
    started = time.monotonic()
    with httpx.Client(base_url=uvicorn_service, timeout=5) as client:
        assert [client.get(f"/lessons/{n}").status_code for n in (1, 2, 3, 4)] == [200] * 4
        assert client.get("/lessons/3").json() == {"id": 3, "title": "Lesson 3"}
        slow = client.get("/report", headers={"X-Correlation-ID": "uvicorn-1"})
        assert slow.status_code == 504
        assert slow.json()["correlation_id"] == "uvicorn-1"
        assert slow.headers["x-correlation-id"] == "uvicorn-1"
        payments = [client.post("/payments/5") for _ in range(3)]
        assert [r.status_code for r in payments] == [504, 504, 503]
        assert payments[-1].headers["content-type"] == "application/problem+json"
        assert "retry-after" in payments[-1].headers
        assert client.get("/health").status_code == 503  # the critical breaker is open
        assert client.get("/health/live").status_code == 200
        page = client.get("/status/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        detail = client.get(
            "/status/state", headers={"Authorization": f"Bearer {STATUS_TOKEN}"}
        ).json()
        assert "payments" in str(detail)  # the operator sees the breaker by name
        assert "payments" not in str(client.get("/status/state").json())  # the public does not
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\n    uvicorn fastapi_service:app answered in {seconds:.2f} s", end=" ")


def test_flaky_api_client(runs: dict[str, Future[Run]], capsys: pytest.CaptureFixture[str]) -> None:
    """The client rides out 503s and a slow answer, names the portal, and the host's
    breaker opens, answers from the cache, and closes once the API is back."""
    out = finished(runs, "flaky_api_client.py", capsys)
    assert "lesson 11: {'id': '11'" in out  # after a 503
    assert "lesson 12: {'id': '12'" in out  # after a read timeout
    assert "lesson 3: CaptivePortalError" in out
    assert "lesson 1: {'id': '1', 'title': 'Lesson 1'}  (fallback: cache" in out
    assert "HostUnavailableError" in out
    assert re.search(r"breaker 127\.0\.0\.1:\d+: OPEN", out)
    assert re.search(r"breaker 127\.0\.0\.1:\d+: CLOSED", out)


def test_redis_fleet(runs: dict[str, Future[Run]], capsys: pytest.CaptureFixture[str]) -> None:
    """Three processes share one rate limit and one breaker through Redis, within bounds."""
    out = finished(runs, "redis_fleet.py", capsys)
    assert out.count("rejected by the open breaker") == 3
    assert out.rstrip().endswith("limits held")


def test_pytest_example(runs: dict[str, Future[Run]], capsys: pytest.CaptureFixture[str]) -> None:
    """The example test file passes under pytest with the plugin."""
    out = finished(runs, "test_with_plugin.py", capsys)
    assert re.search(r"\b8 passed\b", out), out


def test_offline_outbox(runs: dict[str, Future[Run]], capsys: pytest.CaptureFixture[str]) -> None:
    """Answers given while the server is down are synced once each, in order."""
    out = finished(runs, "offline_outbox.py", capsys)
    assert out.count("offline, kept in the outbox") == 4
    assert "0 still waiting" in out
    assert out.rstrip().endswith("5 answer(s) received, 0 lost, 0 received twice, in order")


def test_the_examples_are_listed() -> None:
    """examples/README.rst names every example, and every example it names exists."""
    listing = (EXAMPLES / "README.rst").read_text(encoding="utf-8")
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    named = set(re.findall(r"``(\w+\.py)``", listing))
    assert scripts == named
    tested = {"fastapi_service.py", "flaky_api_client.py", "redis_fleet.py"}
    tested |= {"test_with_plugin.py", "offline_outbox.py"}
    assert scripts == tested, "a new example needs its test here"

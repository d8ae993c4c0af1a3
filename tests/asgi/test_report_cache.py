"""The report cache the health app and the status page share: one build at a time for
blocking (WSGI) and async (ASGI) requests alike."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import resilient.testing
from resilient._runtime import config as _config
from resilient.asgi import HealthApp, _report_cache
from resilient.asgi._health import Reply, Scope
from resilient.asgi._report_cache import ReportCache
from resilient.testing import FakeClock


async def test_an_async_request_waits_for_the_build_a_blocking_request_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ASGI request arriving while a WSGI request builds the health report gets that
    build's answer instead of starting a second build."""
    started, release = threading.Event(), threading.Event()
    builds: list[str] = []
    real: Callable[[HealthApp], Any] = HealthApp.check

    def slow_check(self: HealthApp) -> Any:
        builds.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        return real(self)

    monkeypatch.setattr(HealthApp, "check", slow_check)
    app = HealthApp()
    replies: list[Reply] = []
    blocking = threading.Thread(
        target=lambda: replies.append(app.answer_sync("GET", "/health", None)),
        name="wsgi-request",
    )
    blocking.start()
    assert started.wait(5)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/health", "headers": []}
    request = asyncio.ensure_future(app.answer(scope, send, "ready"))
    await asyncio.sleep(0)  # the request asks for the report and waits
    release.set()
    await asyncio.wait_for(request, 5)
    blocking.join(5)
    assert builds == ["wsgi-request"]
    assert [reply[0] for reply in replies] == [200]
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == replies[0][1]


def _clock_failing_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured clock raises the first time it is read, then reads true."""
    real, reads = _config.state.now, [0]

    def now() -> float:
        reads[0] += 1
        if reads[0] == 1:
            raise OSError("clock unavailable")
        return real()

    monkeypatch.setattr(_config.state, "now", now)


def test_a_blocking_build_whose_clock_fails_lets_the_next_request_build_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build that fails before it starts (the clock raising) hands its error over and
    leaves no build under way, so the next request builds instead of waiting forever."""
    cache: ReportCache[str] = ReportCache(lambda: "report")
    _clock_failing_once(monkeypatch)
    with pytest.raises(OSError, match="clock unavailable"):
        cache.get()
    assert cache.building is None
    assert cache.get() == "report"


async def test_an_async_build_whose_clock_fails_answers_its_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An async request whose build fails before it starts gets the error (not a wait
    without end), and the next request builds again."""
    cache: ReportCache[str] = ReportCache(lambda: "report")
    _clock_failing_once(monkeypatch)
    with pytest.raises(OSError, match="clock unavailable"):
        await asyncio.wait_for(cache.aget(), 5)
    assert cache.building is None
    assert await asyncio.wait_for(cache.aget(), 5) == "report"


def test_a_request_after_a_reset_never_joins_a_build_started_before_it() -> None:
    """After ``resilient.testing.reset()``, a request builds its own report instead of
    waiting for one that describes the state before the reset."""
    started, release = threading.Event(), threading.Event()
    builds: list[int] = []

    def build() -> int:
        builds.append(len(builds))
        if len(builds) == 1:
            started.set()
            release.wait(5)
        return len(builds)

    cache: ReportCache[int] = ReportCache(build)
    before = threading.Thread(target=cache.get)
    before.start()
    try:
        assert started.wait(5)
        resilient.testing.reset()
        assert cache.get() == 2  # built anew on this thread, not the older build's
    finally:
        release.set()
        before.join(5)
    assert builds == [0, 1]


def _hang_the_check(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make every health check hang until released: ``(started, release)``."""
    started, release = threading.Event(), threading.Event()
    real: Callable[[HealthApp], Any] = HealthApp.check

    def hanging_check(self: HealthApp) -> Any:
        started.set()
        release.wait(5)
        return real(self)

    monkeypatch.setattr(HealthApp, "check", hanging_check)
    return started, release


@pytest.mark.realtime
def test_a_blocking_request_gives_up_on_a_build_that_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A WSGI request waiting for a build another request started answers 503 once
    ``WAIT_SECONDS`` pass, instead of holding its worker thread until the build ends."""
    monkeypatch.setattr(_report_cache, "WAIT_SECONDS", 0.02, raising=False)
    started, release = _hang_the_check(monkeypatch)
    app = HealthApp()
    first = threading.Thread(target=app.answer_sync, args=("GET", "/health", None))
    first.start()
    try:
        assert started.wait(5)
        status, body, _ = app.answer_sync("GET", "/health", None)
    finally:
        release.set()
        first.join(5)
    assert status == 503
    assert b"the health check failed" in body


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
async def test_an_async_request_gives_up_on_a_build_that_hangs(
    monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock, path: str
) -> None:
    """An ASGI request answers 503 once ``WAIT_SECONDS`` of the loop's time pass without
    the build finishing, whether it started the build or joined one under way; the build
    goes on, and its result answers the requests after it."""
    started, release = _hang_the_check(monkeypatch)
    fake_clock.autojump = 0.01  # the build's thread shows no progress: jump soon
    app = HealthApp()
    loop = asyncio.get_running_loop()
    try:
        began = loop.time()
        first = asyncio.create_task(_get(app, path))
        await asyncio.sleep(1)
        second = await _get(app, path)
        assert (await first)[0] == second[0] == 503
        assert b"the health check failed" in second[1]
        assert loop.time() - began == pytest.approx(_report_cache.WAIT_SECONDS + 1)
        assert started.is_set()
    finally:
        release.set()
    building = app._reports.building
    if building is not None:
        await asyncio.wrap_future(building)
    assert (await _get(app, path))[0] == 200


async def _get(app: HealthApp, path: str) -> tuple[int, bytes]:
    """The status and body ``app`` answers a GET of ``path`` with."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    await app.answer(scope, send, app.probe(scope))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

"""The health endpoint's per-breaker ``critical`` mark, the Authorization schemes it
leaves alone, the cached report built on its own thread, and evicted services."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import resilient
from resilient import BreakerConfig, CircuitBreaker
from resilient._breaker.registry import CircuitBreakerRegistry
from resilient.asgi import HealthApp, health_app
from resilient.asgi._health import CACHE_SECONDS
from resilient.exceptions import ConfigError
from resilient.testing import FakeClock

TOKEN = "a-long-operator-token-42"


async def get(app: Any, path: str = "/health", headers: dict[str, str] | None = None) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.get(path, headers=headers)


# --- the critical mark ----------------------------------------------------------------------


async def test_a_hand_built_breaker_marked_critical_fails_readiness_while_open() -> None:
    """``CircuitBreaker(name, critical=True)``, registered and forced open: 503."""
    ledger = CircuitBreakerRegistry.instance.register(CircuitBreaker("ledger", critical=True))
    ledger.force_open()
    response = await get(health_app)
    assert response.status_code == 503
    assert response.json()["summary"]["critical_open_circuits"] == 1


async def test_one_decorator_marking_a_shared_breaker_critical_is_enough() -> None:
    """A second decorator on the same name without ``critical`` keeps the mark; an unnamed
    ``@breaker(critical=True)`` marks the breaker named after its function."""
    resilient.breaker("shared-db", critical=True)
    resilient.breaker("shared-db")
    assert CircuitBreakerRegistry.instance.get("shared-db").critical is True

    @resilient.breaker(critical=True)
    def lookup() -> int:
        return 1

    name = f"{__name__}.{lookup.__qualname__}"
    assert CircuitBreakerRegistry.instance.get(name).critical is True
    assert CircuitBreakerRegistry.instance.get_or_create("plain-db").critical is False


async def test_the_critical_preset_alone_does_not_fail_readiness() -> None:
    """``BreakerConfig.critical`` sets thresholds only: forced open, unmarked and
    unnamed, the app stays ready (200) and counts it as open, not critical."""
    CircuitBreakerRegistry.instance.get_or_create("payments", BreakerConfig.critical).force_open()
    response = await get(health_app)
    assert response.status_code == 200
    summary = response.json()["summary"]
    assert (summary["open_circuits"], summary["critical_open_circuits"]) == (1, 0)


def test_critical_must_be_a_bool() -> None:
    """``critical="yes"`` is refused naming ``critical``, for the decorator and the class."""
    with pytest.raises(ConfigError) as caught:
        resilient.breaker("typo-db", critical="yes")  # type: ignore[arg-type]
    assert caught.value.parameter == "critical"
    with pytest.raises(ConfigError) as caught:
        CircuitBreaker("typo-db", critical=1)  # type: ignore[arg-type]
    assert caught.value.parameter == "critical"


# --- Authorization schemes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["Basic dXNlcjpwYXNz", "Digest username=lb", "Bearer", "Negotiate abc"]
)
async def test_another_authorization_scheme_gets_the_public_summary(value: str) -> None:
    """A proxy forwarding non-Bearer credentials gets the public body (200), never 401."""
    app = HealthApp(token=TOKEN)
    response = await get(app, headers={"Authorization": value})
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert "circuits_omitted" not in response.json()


async def test_a_wrong_bearer_token_is_still_refused() -> None:
    """``Bearer <wrong>`` is a 401; ``Bearer <token>`` (any case of the scheme) the detail."""
    app = HealthApp(token=TOKEN)
    wrong = await get(app, headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    right = await get(app, headers={"Authorization": f"bearer {TOKEN}"})
    assert right.status_code == 200
    assert "circuits_omitted" in right.json()


# --- the cached report, built on its own thread ----------------------------------------------


async def test_the_report_answers_for_a_second_then_is_rebuilt(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within ``CACHE_SECONDS`` of a build, requests reuse it (one build, stale status);
    after that the next request rebuilds and sees the breaker opened meanwhile."""
    builds: list[str] = []
    real: Callable[[HealthApp], Any] = HealthApp.check

    def counted(self: HealthApp) -> Any:
        builds.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(HealthApp, "check", counted)
    app = HealthApp(critical=["payments-db"])
    assert (await get(app)).status_code == 200
    CircuitBreakerRegistry.instance.get_or_create("payments-db").force_open()
    fake_clock.advance(CACHE_SECONDS / 2)
    assert (await get(app, "/health/ready")).status_code == 200
    assert len(builds) == 1
    fake_clock.advance(CACHE_SECONDS / 2)
    assert (await get(app)).status_code == 503
    assert len(builds) == 2


async def test_the_report_is_built_on_its_own_thread_not_the_default_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The build runs on a ``resilient-health`` thread, the loop's default executor is
    never used, and once the answer is sent no such thread is left."""
    names: list[str] = []
    real: Callable[[HealthApp], Any] = HealthApp.check

    def recorded(self: HealthApp) -> Any:
        names.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(HealthApp, "check", recorded)
    loop = asyncio.get_running_loop()
    own_executor = loop.run_in_executor

    def refused(executor: Any, *args: Any) -> Any:
        if executor is None:
            raise AssertionError("the default executor was used")
        return own_executor(executor, *args)

    monkeypatch.setattr(loop, "run_in_executor", refused)
    assert (await get(HealthApp())).status_code == 200
    assert names == ["resilient-health"]
    for thread in threading.enumerate():
        if thread.name == "resilient-health":
            thread.join(5)
    assert not [t for t in threading.enumerate() if t.name == "resilient-health"]


async def test_a_waiter_that_gives_up_leaves_the_build_to_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One of three waiting requests cancelled: the other two get the one build's answer."""
    release = threading.Event()
    builds: list[int] = []
    real: Callable[[HealthApp], Any] = HealthApp.check

    def slow(self: HealthApp) -> Any:
        builds.append(1)
        release.wait(5)
        return real(self)

    monkeypatch.setattr(HealthApp, "check", slow)
    app = HealthApp()
    requests = [asyncio.ensure_future(get(app)) for _ in range(3)]
    for _ in range(20):
        await asyncio.sleep(0)
    requests[0].cancel()
    release.set()
    answers = await asyncio.gather(*requests[1:])
    assert [a.status_code for a in answers] == [200, 200]
    assert requests[0].cancelled()
    assert builds == [1]


def test_an_evicted_service_shows_closed_not_unknown(fake_clock: FakeClock) -> None:
    """A listed service whose breaker was evicted while idle reads ``closed``; a name with
    no breaker at all stays ``unknown``."""
    registry = CircuitBreakerRegistry.instance
    kept = registry.get_or_create("search-api")  # held here, so evicted but not collected
    assert registry.idle_timeout is not None
    fake_clock.advance(registry.idle_timeout)
    detail = HealthApp(services=["search-api", "never-made"]).report()
    assert "search-api" not in registry
    assert detail["services"] == {"search-api": "closed", "never-made": "unknown"}
    assert kept.name == "search-api"

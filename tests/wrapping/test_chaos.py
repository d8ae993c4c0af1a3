"""resilient.chaos: faults, latency and results injected as decorators or around a block."""

from __future__ import annotations

import asyncio
import time

import pytest

import resilient
from resilient._runtime import config
from resilient.chaos import ChaosInjected, inject_fault, inject_latency, inject_result
from resilient.testing import FakeClock


def test_seed_chaos_ai_timeout_shows_the_fallback_hint(fake_clock: FakeClock) -> None:
    """The seed's Flutter chaos test: AI delayed 60 s, 45 s budget, the fallback hint shows."""

    @resilient.fallback(resilient.FallbackResponses.hint)
    @resilient.timeout(resilient.Timeouts.ai_operation)
    def get_hint(question: str) -> str:
        return "a real hint"

    started = time.perf_counter()
    with inject_latency(60, enabled=True):  # mockAiClient.setResponseDelay(60 s)
        hint = get_hint("why do leaves change colour?")
    assert hint == resilient.FallbackResponses.hint
    assert time.perf_counter() - started < 0.05
    assert fake_clock.monotonic() == 45


def test_seed_chaos_breaker_opens_after_failures(fake_clock: FakeClock) -> None:
    """The seed's backend chaos test: three failures open the breaker."""
    started = time.perf_counter()

    def failing() -> None:
        raise RuntimeError("Test failure")

    breaker = resilient.compat.create_circuit_breaker(failing, name="test", failure_threshold=3)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            breaker.fire()
    assert breaker.opened
    assert time.perf_counter() - started < 0.05


def test_context_faults_reach_retries_like_network_errors(fake_clock: FakeClock) -> None:
    """Inside the block the fault is injected under the retry, which retries it."""
    calls = 0

    @resilient.retry(attempts=3, initial_delay=0)
    def fetch() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with inject_fault(ConnectionError, enabled=True), pytest.raises(ConnectionError) as caught:
        fetch()
    assert calls == 0
    assert "after 3 attempts" in caught.value.__notes__[0]
    assert fetch() == "ok"  # outside the block nothing is injected


def test_rate_and_seed_make_injection_repeatable(fake_clock: FakeClock) -> None:
    """The same seed injects on the same calls."""

    def pattern(seed: int) -> list[bool]:
        @inject_fault(ValueError("boom"), rate=0.3, seed=seed, enabled=True)
        def work() -> int:
            return 1

        outcomes = []
        for _ in range(50):
            try:
                work()
                outcomes.append(False)
            except ValueError:
                outcomes.append(True)
        return outcomes

    first = pattern(7)
    assert first == pattern(7)
    assert 5 < sum(first) < 30


async def test_async_latency_and_results(fake_clock: FakeClock) -> None:
    """Async calls get latency through the clock, and canned results."""

    @inject_latency(2.5, enabled=True)
    async def slow() -> str:
        return "done"

    @inject_result({"status": "cached"}, enabled=True)
    async def fetch() -> dict[str, str]:
        raise AssertionError("not called")

    assert await slow() == "done"
    assert fake_clock.monotonic() == 2.5
    assert await fetch() == {"status": "cached"}


def test_disabled_injectors_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """enabled=False, or RESILIENT_CHAOS unset, leaves calls alone."""
    monkeypatch.delenv("RESILIENT_CHAOS", raising=False)

    @inject_fault(ValueError)
    def work() -> int:
        return 1

    assert work() == 1
    monkeypatch.setenv("RESILIENT_CHAOS", "1")

    @inject_fault(ValueError)
    def staged() -> int:
        return 1

    with pytest.raises(ValueError, match="injected"):
        staged()


def test_every_injection_is_an_event_and_a_metric(fake_clock: FakeClock) -> None:
    """Listeners get ChaosInjected (between the retry's own events); chaos_injections_total
    counts by kind."""
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    events: list[object] = []
    resilient.add_listener(events.append)

    @resilient.retry(attempts=2, initial_delay=0)
    def work() -> int:
        return 1

    with inject_fault(ConnectionError, enabled=True), pytest.raises(ConnectionError):
        work()
    assert [type(e) for e in events] == [
        ChaosInjected,
        resilient.RetryScheduled,
        ChaosInjected,
        resilient.RetryGaveUp,
    ]
    assert sink.counter("chaos_injections_total", kind="fault") == 2


def test_bad_arguments_are_refused() -> None:
    """Rates outside [0, 1], negative latency and non-errors raise ConfigError."""
    with pytest.raises(resilient.ConfigError, match="rate"):
        inject_fault(ValueError, rate=2)
    with pytest.raises(resilient.ConfigError, match="seconds"):
        inject_latency(-1)
    with pytest.raises(resilient.ConfigError, match="error"):
        inject_fault(42)  # type: ignore[arg-type]


def test_one_injector_nested_in_itself_leaves_no_chaos_behind() -> None:
    """The same injector entered twice, nested, injects inside and is gone after both."""

    @resilient.retry(attempts=2)
    def call() -> str:
        return "real"

    injector = inject_result("canned", enabled=True)
    with injector:
        with injector:
            assert call() == "canned"
        assert call() == "canned"
    assert call() == "real"
    assert not config.state.active


def test_leaving_a_nested_injector_keeps_the_blocks_own_error() -> None:
    """An error raised inside nested blocks of one injector reaches the caller unchanged."""
    injector = inject_result("canned", enabled=True)
    error = KeyError("the caller's")

    def nested() -> None:
        with injector, injector:
            raise error

    with pytest.raises(KeyError) as caught:
        nested()
    assert caught.value is error
    assert caught.value.__context__ is None
    assert config.state.chaos == 0


async def test_one_injector_shared_by_overlapping_tasks() -> None:
    """Two tasks in overlapping blocks of one injector both inject, and leave no chaos on."""

    @resilient.retry(attempts=2)
    async def call() -> str:
        return "real"

    injector = inject_result("canned", enabled=True)
    first_in, second_in = asyncio.Event(), asyncio.Event()

    async def first() -> str:
        with injector:
            first_in.set()
            await second_in.wait()
            return await call()  # leaves while the second task is still inside

    async def second() -> str:
        await first_in.wait()
        with injector:
            second_in.set()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return await call()

    assert await asyncio.gather(first(), second()) == ["canned", "canned"]
    assert config.state.chaos == 0
    assert await call() == "real"

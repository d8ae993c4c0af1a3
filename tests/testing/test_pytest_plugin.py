"""The pytest plugin: fixtures, markers and virtual time, run in an inner pytest session."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytest_plugins = ("pytester",)

INSTALLED = any(ep.value == "resilient_pytest" for ep in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "resilient_pytest"]


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(source)
    return pytester.runpytest(
        *PLUGIN,
        "-p",
        "no:cacheprovider",
        "-q",
        "--asyncio-mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )


def test_fixtures_and_markers(pytester: pytest.Pytester) -> None:
    """Users get fake_clock, resilient_metrics, breakers and the markers without conftest."""
    result = run(
        pytester,
        """
        import pytest
        import resilient

        def test_retry_without_waiting(fake_clock, resilient_metrics):
            calls = []

            @resilient.retry(attempts=3)
            def flaky():
                calls.append(1)
                if len(calls) < 3:
                    raise ConnectionError
                return "ok"

            assert flaky() == "ok"
            assert fake_clock.sleeps  # waited, in virtual time
            resilient_metrics.assert_counter("retry_attempts_total", 2)

        def test_breakers_by_name(breakers):
            @resilient.breaker("ai")
            def call():
                return 1

            breakers.open("ai")
            assert breakers.state("ai") == "forced_open"
            with pytest.raises(resilient.CircuitOpenError):
                call()
            breakers.close("ai")
            assert call() == 1

        @pytest.mark.resilient_instant(attempts=2)
        def test_instant_marker(fake_clock):
            calls = []

            @resilient.retry(attempts=5, initial_delay=10)
            def failing():
                calls.append(1)
                raise ConnectionError

            with pytest.raises(ConnectionError):
                failing()
            assert len(calls) == 2 and fake_clock.sleeps == []

        @pytest.mark.resilient_disabled
        def test_disabled_marker():
            @resilient.timeout(0.001)
            def work():
                return "direct"

            assert work() == "direct"

        def test_state_is_fresh_again():
            assert resilient.compat.CircuitBreakerRegistry.instance.names() == []
        """,
    )
    result.assert_outcomes(passed=5)


def test_async_tests_get_virtual_event_loop_time(pytester: pytest.Pytester) -> None:
    """asyncio.sleep(60) under fake_clock takes no real time: the loop jumps ahead."""
    result = run(
        pytester,
        """
        import asyncio, time
        import resilient

        async def test_sleep_a_minute(fake_clock):
            started = time.perf_counter()
            await asyncio.sleep(60)
            await asyncio.gather(asyncio.sleep(5), asyncio.sleep(10))
            assert fake_clock.monotonic() >= 70
            assert time.perf_counter() - started < 1

        async def test_timeout_in_virtual_time(fake_clock):
            @resilient.fallback("fallback hint")
            @resilient.timeout(45)
            async def hint():
                await asyncio.sleep(60)
                return "late"

            assert await hint() == "fallback hint"
        """,
    )
    result.assert_outcomes(passed=2)


def test_timeouts_under_fake_clock_behave_as_in_production(pytester: pytest.Pytester) -> None:
    """Under fake_clock the body is stopped at the virtual deadline: no side effect after."""
    result = run(
        pytester,
        """
        import asyncio, threading, time
        import pytest
        import resilient

        async def test_async_body_is_cancelled_at_45s(fake_clock):
            after = []

            @resilient.timeout(45)
            async def generate():
                await asyncio.sleep(60)
                after.append("side effect")

            with pytest.raises(resilient.TimeoutExceededError):
                await generate()
            assert fake_clock.monotonic() == 45
            assert after == []

        async def test_async_call_that_never_answers_times_out(fake_clock):
            @resilient.timeout(45)
            async def never():
                await asyncio.Event().wait()

            # the outer guard is virtual too: it only ends a call that hangs
            with pytest.raises(resilient.TimeoutExceededError):
                await asyncio.wait_for(never(), 100)
            assert fake_clock.monotonic() == 45

        @pytest.mark.parametrize("strategy", ["thread", "signal"])
        def test_sync_call_that_never_answers_times_out(fake_clock, strategy):
            gate = threading.Event()

            @resilient.timeout(45, strategy=strategy)
            def never():
                gate.wait(5)

            started = time.perf_counter()
            try:
                with pytest.raises(resilient.TimeoutExceededError):
                    never()
            finally:
                gate.set()
            # the autojump needs 0.5 s of idleness; a loaded machine may take longer to see
            # it, but never as long as the body's own 5 s
            assert time.perf_counter() - started < 2.5
            assert fake_clock.monotonic() == 45
        """,
    )
    result.assert_outcomes(passed=4)


def test_async_timeout_lets_real_work_in_a_thread_finish(pytester: pytest.Pytester) -> None:
    """Under fake_clock, @timeout over asyncio.to_thread of real work returns its result."""
    result = run(
        pytester,
        """
        import asyncio, time
        import resilient

        async def test_to_thread_work_finishes(fake_clock):
            @resilient.timeout(10)
            async def fetch():
                return await asyncio.to_thread(lambda: time.sleep(0.02) or "fetched")

            assert await fetch() == "fetched"
            assert fake_clock.monotonic() < 10

        async def test_virtual_sleep_beside_it_is_still_instant(fake_clock):
            started = time.perf_counter()
            await asyncio.sleep(60)
            assert time.perf_counter() - started < 0.2
        """,
    )
    result.assert_outcomes(passed=2)


def test_plugin_start_up_cost() -> None:
    """Loading the plugin adds well under 20 ms to a session: it imports nothing heavy."""
    code = (
        "import time, pytest; t = time.perf_counter(); import resilient_pytest; "
        "print(time.perf_counter() - t, 'resilient' in __import__('sys').modules)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(3)
    ]
    seconds = min(float(run.stdout.split()[0]) for run in runs)
    assert seconds < 0.02
    assert runs[0].stdout.split()[1] == "False"  # resilient itself is not imported

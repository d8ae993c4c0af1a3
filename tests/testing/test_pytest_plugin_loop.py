"""fake_clock's virtual time drives the test's own event loop, and no other loop."""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from importlib.metadata import version

import pytest
from test_pytest_plugin import run

import resilient
from resilient.testing import FakeClock, VirtualTimeLoop

pytest_plugins = ("pytester",)

ASYNCIO_PLUGIN = tuple(int(part) for part in version("pytest-asyncio").split(".")[:2])

ORIGINAL_TIME = asyncio.BaseEventLoop.time
ORIGINAL_SELECT = selectors.DefaultSelector.select


def loop_time_in_another_thread() -> tuple[float, float]:
    """``loop.time()`` of a loop running in a new thread, and ``time.monotonic()`` beside it."""
    seen: list[tuple[float, float]] = []

    async def read() -> None:
        seen.append((asyncio.get_running_loop().time(), time.monotonic()))

    thread = threading.Thread(target=asyncio.run, args=(read(),))
    thread.start()
    thread.join()
    return seen[0]


async def test_this_suites_fake_clock_drives_only_the_tests_loop(fake_clock: FakeClock) -> None:
    """Here too, the test's loop runs on fake_clock while another thread's loop keeps real time."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    await asyncio.sleep(3600)
    assert loop.time() == fake_clock.monotonic() == 3600
    other, real = loop_time_in_another_thread()
    assert abs(other - real) < 1
    assert asyncio.BaseEventLoop.time is ORIGINAL_TIME
    assert selectors.DefaultSelector.select is ORIGINAL_SELECT


def test_asyncio_is_never_patched_for_the_process(pytester: pytest.Pytester) -> None:
    """During a fake_clock test, asyncio's and selectors' classes keep their own functions,
    and loops other than the test's (another thread's, a new one in the test's thread) read
    real time."""
    result = run(
        pytester,
        """
        import asyncio, selectors, threading, time

        ORIGINAL_TIME = asyncio.BaseEventLoop.time
        ORIGINAL_SELECT = selectors.DefaultSelector.select

        def asyncio_is_untouched():
            assert asyncio.BaseEventLoop.time is ORIGINAL_TIME
            assert selectors.DefaultSelector.select is ORIGINAL_SELECT
            assert ORIGINAL_TIME.__module__ == "asyncio.base_events"
            assert ORIGINAL_SELECT.__module__ == "selectors"

        def loop_time_in_another_thread():
            seen = []

            async def read():
                seen.append((asyncio.get_running_loop().time(), time.monotonic()))

            thread = threading.Thread(target=asyncio.run, args=(read(),))
            thread.start()
            thread.join()
            return seen[0]

        async def test_another_threads_loop_keeps_real_time(fake_clock):
            await asyncio.sleep(3600)
            assert asyncio.get_running_loop().time() == fake_clock.monotonic() == 3600
            other, real = loop_time_in_another_thread()
            assert abs(other - real) < 1
            asyncio_is_untouched()

        def test_a_new_loop_in_the_tests_thread_keeps_real_time(fake_clock):
            fake_clock.advance(3600)
            loop = asyncio.new_event_loop()
            try:
                assert abs(loop.time() - time.monotonic()) < 1
            finally:
                loop.close()
            asyncio_is_untouched()

        async def test_a_test_without_fake_clock_keeps_real_time():
            loop = asyncio.get_running_loop()
            assert type(loop).__name__ != "VirtualTimeLoop"
            assert abs(loop.time() - time.monotonic()) < 1
        """,
    )
    result.assert_outcomes(passed=3)


def test_a_fixture_that_uses_fake_clock_gives_its_test_the_virtual_loop(
    pytester: pytest.Pytester,
) -> None:
    """A test that gets fake_clock through another fixture, or made its loop's first timer
    before the clock existed, still runs on virtual time."""
    result = run(
        pytester,
        """
        import asyncio, time
        import pytest

        @pytest.fixture
        async def started():
            asyncio.get_running_loop()  # the loop exists before fake_clock below
            return time.perf_counter()

        @pytest.fixture
        def frozen(fake_clock):
            return fake_clock

        async def test_through_a_fixture(frozen):
            await asyncio.sleep(600)
            assert frozen.monotonic() == 600

        async def test_loop_made_before_the_clock(started, fake_clock):
            await asyncio.sleep(600)
            assert fake_clock.monotonic() == 600
            assert time.perf_counter() - started < 1
        """,
    )
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(ASYNCIO_PLUGIN < (1, 4), reason="loop factories came with pytest-asyncio 1.4")
def test_a_conftests_loop_factory_still_serves_the_other_tests(pytester: pytest.Pytester) -> None:
    """A project's own pytest_asyncio_loop_factories keeps choosing the loop of every test
    that does not use fake_clock."""
    pytester.makeconftest(
        """
        import asyncio

        class ProjectLoop(asyncio.SelectorEventLoop):
            pass

        def pytest_asyncio_loop_factories(config, item):
            return {"project": ProjectLoop}
        """
    )
    result = run(
        pytester,
        """
        import asyncio

        async def test_projects_loop():
            assert type(asyncio.get_running_loop()).__name__ == "ProjectLoop"

        async def test_virtual_loop(fake_clock):
            assert type(asyncio.get_running_loop()).__name__ == "VirtualTimeLoop"
        """,
    )
    result.assert_outcomes(passed=2)


def test_a_virtual_time_loop_outside_pytest() -> None:
    """VirtualTimeLoop runs a minute of sleeps at once on its clock, and real time without one."""
    clock = FakeClock()
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
        started = time.perf_counter()
        runner.run(asyncio.sleep(60))
        assert clock.monotonic() == 60
        assert time.perf_counter() - started < 1
        loop = runner.get_loop()
        assert isinstance(loop, VirtualTimeLoop)
        loop.clock = None
        assert abs(loop.time() - time.monotonic()) < 1
        assert "VirtualTimeLoop" in repr(loop)


async def test_a_timeout_under_a_virtual_time_loop_cancels_as_in_production(
    fake_clock: FakeClock,
) -> None:
    """Cancellation at a virtual deadline reaches the body and its cleanup, as in production."""
    seen: list[str] = []

    @resilient.timeout(45)
    async def body() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleanup")

    with pytest.raises(resilient.TimeoutExceededError):
        await body()
    assert seen == ["cancelled", "cleanup"]
    assert fake_clock.monotonic() == 45


@pytest.mark.parametrize("clock", [3, "fake", object()])
def test_a_virtual_time_loop_refuses_what_is_not_a_movable_clock(clock: object) -> None:
    """VirtualTimeLoop(clock=...) and loop.clock = ... name the parameter and what is allowed."""
    with pytest.raises(resilient.ConfigError) as caught:
        VirtualTimeLoop(clock)  # type: ignore[arg-type]
    assert caught.value.parameter == "clock"
    assert caught.value.value is clock
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(resilient.ConfigError, match="FakeClock"):
            loop.clock = clock  # type: ignore[assignment]
        assert loop.clock is None
    finally:
        loop.close()

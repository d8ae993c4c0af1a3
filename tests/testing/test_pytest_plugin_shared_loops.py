"""fake_clock on loops shared by several tests, and the work a virtual-time loop waits for."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from test_pytest_plugin import PLUGIN, run

from resilient.testing import FakeClock, VirtualTimeLoop

pytest_plugins = ("pytester",)


@pytest.mark.realtime
async def test_a_child_process_is_awaited_under_fake_clock(fake_clock: FakeClock) -> None:
    """Waiting with a 10 s budget for a child process that runs for real gets its exit
    code, instead of the loop jumping to the deadline while the child runs."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    assert await asyncio.wait_for(child.wait(), 10) == 0
    assert fake_clock.monotonic() < 10


def test_a_virtual_time_loops_time_never_goes_back_under_its_timers() -> None:
    """Given a new clock at 0, or real time, while a timer is pending after its time ran
    ahead, the loop carries on from where its time was and the timer comes due after its
    own delay; with no timer pending, its time is the new clock's."""
    loop = VirtualTimeLoop(FakeClock())
    try:
        loop.run_until_complete(asyncio.sleep(3600))
        before = loop.time()
        assert before == 3600
        fired: list[float] = []
        loop.call_later(10, lambda: fired.append(loop.time()))
        loop.clock = FakeClock()  # the next test's clock, at 0
        assert loop.time() == before
        loop.run_until_complete(asyncio.sleep(10))
        assert fired == [before + 10]
        assert loop.time() == before + 10
        loop.call_later(3600, lambda: fired.append(loop.time()))
        loop.clock = None  # real time, unless that is behind the loop's time
        assert loop.time() >= before + 10
        assert abs(loop.time() - max(time.monotonic(), before + 10)) < 1
        clock = FakeClock()
        loop.close()
        loop = VirtualTimeLoop()
        loop.clock = clock  # nothing pending: the clock's own time
        assert loop.time() == 0
    finally:
        loop.close()


def test_a_module_loops_periodic_task_runs_in_every_fake_clock_test(
    pytester: pytest.Pytester,
) -> None:
    """A module-scoped fixture's task, started before any test's clock, keeps ticking in
    the virtual time of each fake_clock test sharing its loop, and the loop's time never
    goes back from one test to the next."""
    result = run(
        pytester,
        """
        import asyncio
        import pytest, pytest_asyncio

        SEEN = []

        @pytest_asyncio.fixture(loop_scope="module", scope="module")
        async def ticker():
            ticks = []

            async def tick():
                while True:
                    await asyncio.sleep(1)
                    ticks.append(asyncio.get_running_loop().time())

            task = asyncio.create_task(tick())
            yield ticks
            task.cancel()

        @pytest.mark.asyncio(loop_scope="module")
        @pytest.mark.parametrize("run", [1, 2])
        async def test_ticks_in_virtual_time(ticker, fake_clock, run):
            loop = asyncio.get_running_loop()
            SEEN.append(loop.time())
            before = len(ticker)
            await asyncio.sleep(10)
            assert len(ticker) - before >= 9
            SEEN.append(loop.time())
            assert SEEN == sorted(SEEN)
        """,
    )
    result.assert_outcomes(passed=2)


OLD_PYTEST_ASYNCIO = """
import asyncio
import inspect

import pytest
import resilient_pytest


def pytest_configure(config):
    # What the plugin does when pytest-asyncio is older than 1.4 (no loop factories).
    resilient_pytest._provide_event_loop_policy(config)


@pytest.fixture(scope="module")
def _module_event_loop(event_loop_policy):
    # As pytest-asyncio 0.24 to 1.3 make the loop a module's tests share.
    loop = event_loop_policy.new_event_loop()
    yield loop
    loop.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        loop = pyfuncitem.funcargs["_module_event_loop"]
        names = pyfuncitem._fixtureinfo.argnames
        loop.run_until_complete(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
"""


def test_an_older_pytest_asyncios_module_loop_runs_on_fake_clock(
    pytester: pytest.Pytester,
) -> None:
    """With pytest-asyncio before 1.4, a module's shared loop made before a fake_clock test
    runs is a VirtualTimeLoop that test drives; a module without fake_clock tests keeps
    the policy's own loops."""
    pytester.makeconftest(OLD_PYTEST_ASYNCIO)
    pytester.makepyfile(
        test_shared="""
        import asyncio, time

        async def test_first(_module_event_loop):
            assert asyncio.get_running_loop() is _module_event_loop

        async def test_module_loop_under_fake_clock(_module_event_loop, fake_clock):
            assert type(asyncio.get_running_loop()).__name__ == "VirtualTimeLoop"
            started = time.perf_counter()
            await asyncio.sleep(600)
            assert fake_clock.monotonic() == 600
            assert time.perf_counter() - started < 1
        """,
        test_plain="""
        import asyncio

        async def test_plain_module_loop(_module_event_loop):
            assert type(asyncio.get_running_loop()).__name__ != "VirtualTimeLoop"
        """,
    )
    result = pytester.runpytest(*PLUGIN, "-p", "no:asyncio", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)

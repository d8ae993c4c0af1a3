"""fake_clock on loops shared by several tests, and the work a virtual-time loop waits for."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from test_pytest_plugin import run

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

"""@timeout under a clock other than the system clock fires at that clock's deadline."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import resilient
from resilient.testing import FakeClock


class WallClock:
    """A user's clock that is real time, but not resilient's system clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.fixture
def wall_clock() -> WallClock:
    clock = WallClock()
    resilient.configure(clock=clock)
    return clock


@pytest.mark.realtime
@pytest.mark.usefixtures("wall_clock")
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_sync_timeout_fires_at_the_deadline_of_a_user_clock(strategy: str) -> None:
    """With a user's real-time clock, a sync call is stopped at its deadline, not after."""
    gate = threading.Event()

    @resilient.timeout(0.02, strategy=strategy)  # type: ignore[arg-type]
    def slow() -> str:
        end = time.monotonic() + 1.0
        while time.monotonic() < end and not gate.is_set():
            time.sleep(0.001)
        return "late"

    started = time.perf_counter()
    try:
        with pytest.raises(resilient.TimeoutExceededError):
            slow()
        assert time.perf_counter() - started < 0.5
    finally:
        gate.set()


@pytest.mark.realtime
@pytest.mark.usefixtures("wall_clock")
async def test_async_timeout_fires_at_the_deadline_of_a_user_clock() -> None:
    """With a user's real-time clock, an async call is cancelled at its deadline."""
    after: list[str] = []

    @resilient.timeout(0.02)
    async def slow() -> None:
        await asyncio.sleep(1)
        after.append("side effect")

    started = time.perf_counter()
    with pytest.raises(resilient.TimeoutExceededError):
        await slow()
    assert time.perf_counter() - started < 0.5
    assert after == []


@pytest.mark.realtime
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_a_fake_clock_with_autojump_releases_a_hanging_sync_call_at_its_deadline(
    strategy: str,
) -> None:
    """A call that never moves the clock is stopped at its virtual deadline, at once."""
    clock = FakeClock(autojump=0.01)
    gate = threading.Event()

    @resilient.timeout(45, strategy=strategy)  # type: ignore[arg-type]
    def hang() -> None:
        gate.wait(2)

    with resilient.testing.use_clock(clock):
        started = time.perf_counter()
        try:
            with pytest.raises(resilient.TimeoutExceededError):
                hang()
        finally:
            gate.set()
    assert time.perf_counter() - started < 1.0
    assert clock.monotonic() == 45.0


@pytest.mark.realtime
def test_a_sync_call_is_released_when_the_fake_clock_passes_its_deadline() -> None:
    """Another thread moving the fake clock past the deadline releases the caller."""
    clock = FakeClock()
    gate = threading.Event()
    entered = threading.Event()

    @resilient.timeout(45)
    def hang() -> None:
        entered.set()
        gate.wait(2)

    def move_time() -> None:
        entered.wait(2)
        clock.advance(50)

    mover = threading.Thread(target=move_time)
    with resilient.testing.use_clock(clock):
        mover.start()
        started = time.perf_counter()
        try:
            with pytest.raises(resilient.TimeoutExceededError):
                hang()
        finally:
            gate.set()
            mover.join()
    assert time.perf_counter() - started < 1.0


def test_fake_clock_rejects_a_bad_autojump() -> None:
    """autojump is a number of seconds."""
    with pytest.raises(resilient.ConfigError) as caught:
        FakeClock(autojump=-1)
    assert caught.value.parameter == "autojump"


@pytest.mark.realtime
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_a_fake_clock_lets_a_call_that_keeps_computing_finish(strategy: str) -> None:
    """A body busy on the CPU for longer than autojump is working, not hanging: it returns."""
    clock = FakeClock(autojump=0.02)

    @resilient.timeout(30, strategy=strategy)  # type: ignore[arg-type]
    def compute() -> str:
        end = time.thread_time() + 0.06  # 60 ms of CPU, however loaded the machine is
        while time.thread_time() < end:
            pass
        return "done"

    with resilient.testing.use_clock(clock):
        assert compute() == "done"
    assert clock.monotonic() == 0.0


@pytest.mark.realtime
def test_a_body_that_starts_late_gets_its_own_window_before_any_jump() -> None:
    """A worker scheduled late (a loaded machine) is not a hanging call: the window that
    decides starts when the body starts, and a body that then computes finishes."""
    from resilient._timeout.decorator import _Tracked, _wait_on_clock

    clock = FakeClock(autojump=0.02)
    done = threading.Lock()
    done.acquire()

    def compute() -> None:
        end = time.thread_time() + 0.06
        while time.thread_time() < end:
            pass
        done.release()

    body = _Tracked(compute)
    late = threading.Timer(0.06, body)  # starts after three whole windows
    late.start()
    try:
        assert _wait_on_clock(clock, done, 30.0, body) is True
    finally:
        late.join()
    assert clock.monotonic() == 0.0

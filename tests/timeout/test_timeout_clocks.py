"""@timeout under a clock other than the system clock fires at that clock's deadline."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

import resilient
from resilient._timeout import decorator as _timeout
from resilient._timeout.workers import WorkerPool
from resilient.metrics import MemorySink
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
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_a_sync_call_under_a_fake_clock_gets_its_arguments(strategy: str) -> None:
    """Under a fake clock, both sync strategies pass positional and keyword arguments."""

    @resilient.timeout(45, strategy=strategy)  # type: ignore[arg-type]
    def add(x: int, *, y: int) -> int:
        return x + y

    with resilient.testing.use_clock(FakeClock()):
        assert add(1, y=2) == 3


async def test_an_async_call_under_a_fake_clock_gets_its_arguments() -> None:
    """Under a fake clock, an async call gets positional and keyword arguments."""

    @resilient.timeout(45)
    async def add(x: int, *, y: int) -> int:
        return x + y

    with resilient.testing.use_clock(FakeClock()):
        assert await add(1, y=2) == 3


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
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_an_autojump_lands_exactly_on_the_deadline_and_is_not_late(strategy: str) -> None:
    """From any start time, the autojump moves the clock to the call's deadline, no further,
    and the timeout is on time (late_by None)."""
    clock = FakeClock(100.0, autojump=0.01)
    gate = threading.Event()

    @resilient.timeout(45, strategy=strategy)  # type: ignore[arg-type]
    def hang() -> None:
        gate.wait(2)

    with resilient.testing.use_clock(clock):
        try:
            with pytest.raises(resilient.TimeoutExceededError) as caught:
                hang()
        finally:
            gate.set()
    assert clock.monotonic() == 145.0
    assert caught.value.late_by is None
    assert caught.value.name.endswith("hang")


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


@pytest.mark.realtime  # waits (a few ms) for the released hung calls to end
def test_under_a_fake_clock_hanging_calls_are_refused_as_under_the_system_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a fake clock, a function with max_threads calls hung past their deadline, or
    hung calls filling all but the pool's reserve, get the next call refused at once: a
    counted TimeoutExceededError naming the function and saying why it never started."""
    pool = WorkerPool(max_workers=4, idle_timeout=1.0, reserve=1)
    monkeypatch.setattr(_timeout, "_pool", pool)
    sink = MemorySink()
    resilient.configure(metrics=sink)
    clock = FakeClock()
    release = threading.Event()

    @resilient.timeout(45, max_threads=2)
    def hang_a() -> None:
        clock.advance(50)  # past its deadline, then blocked: abandoned
        release.wait(5)

    @resilient.timeout(45, max_threads=2)
    def hang_b() -> None:
        clock.advance(50)
        release.wait(5)

    with resilient.testing.use_clock(clock):
        try:
            for hang in (hang_a, hang_a, hang_b):
                with pytest.raises(resilient.TimeoutExceededError):
                    hang()
            assert pool.stats().abandoned == 3
            with pytest.raises(resilient.TimeoutExceededError) as refused:
                hang_a()
            with pytest.raises(resilient.TimeoutExceededError) as crowded:
                hang_b()
        finally:
            release.set()
    assert refused.value.name.endswith("hang_a")
    assert refused.value.reason == (
        "it was not started: 2 earlier calls of it are still running past their deadline "
        "and hold pool threads (max_threads=2)"
    )
    assert crowded.value.name.endswith("hang_b")
    assert crowded.value.reason == (
        "it was not started: earlier calls of it are still running past their deadline, "
        "and such calls already hold 3 of the pool's 4 threads; the other 1 are kept for "
        "functions that are not hanging"
    )
    assert refused.value.late_by is None
    assert crowded.value.late_by is None
    assert sink.counter("timeouts_total", policy=refused.value.name) == 3
    assert sink.counter("timeouts_total", policy=crowded.value.name) == 2
    end = time.monotonic() + 2.0
    while pool.stats().abandoned:
        assert time.monotonic() < end, "the hung calls never ended"
        time.sleep(0.001)


@pytest.mark.realtime  # waits (a few ms) for the call to queue and for the pool to drain
def test_under_a_fake_clock_a_call_queued_past_its_deadline_says_it_never_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a fake clock, a call still waiting for a pool thread when the clock passes its
    deadline raises TimeoutExceededError naming it, how late, and that it never started."""
    pool = WorkerPool(max_workers=1, idle_timeout=1.0, reserve=0)
    monkeypatch.setattr(_timeout, "_pool", pool)
    clock = FakeClock()
    hold = threading.Event()

    @resilient.timeout(1000)
    def busy() -> None:
        hold.wait(5)

    @resilient.timeout(45)
    def queued() -> None:
        pytest.fail("a call past its deadline must not start")

    def wait_for(condition: Any) -> None:
        end = time.monotonic() + 2.0
        while not condition():
            assert time.monotonic() < end, "condition never met"
            time.sleep(0.001)

    def move_time() -> None:
        wait_for(lambda: pool.stats().queued == 1)
        clock.advance(50)

    with resilient.testing.use_clock(clock):
        holder = threading.Thread(target=busy)
        mover = threading.Thread(target=move_time)
        holder.start()
        wait_for(lambda: pool.stats().idle == 0 and pool.stats().workers == 1)
        mover.start()
        try:
            with pytest.raises(resilient.TimeoutExceededError) as caught:
                queued()
        finally:
            hold.set()
            mover.join()
            holder.join()
    assert caught.value.name.endswith("queued")
    assert caught.value.reason == "it never started: every pool thread was busy until its deadline"
    assert caught.value.late_by == 5.0


@pytest.mark.realtime  # computes for 10 ms of CPU time
@pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"),
    reason="no scheduler statistics in /proc on this platform",
)
def test_the_autojump_reads_a_threads_activity_from_the_scheduler_or_its_cpu_clock() -> None:
    """What the autojump watches: a thread's running-or-runnable seconds from /proc by its
    native id, or its CPU time by its thread id; both grow while it computes, and a thread
    not yet known reads as None."""
    native, ident = threading.get_native_id(), threading.get_ident()
    scheduled = _timeout._active_seconds(None, native)
    cpu = _timeout._active_seconds(ident, None)
    assert scheduled is not None
    assert cpu is not None
    end = time.thread_time() + 0.01
    while time.thread_time() < end:
        pass
    assert (_timeout._active_seconds(None, native) or 0.0) > scheduled
    assert (_timeout._active_seconds(ident, None) or 0.0) > cpu
    assert _timeout._active_seconds(None, None) is None

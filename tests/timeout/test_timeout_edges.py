"""@timeout at its edges: calls ending exactly at their deadline, nested calls sharing one,
alarms that come late or during the wrapper's bookkeeping, a Ctrl-C while waiting, and what
each error says (which function, how late, why) and where it is counted."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

import resilient
from resilient import TimeoutExceededError, timeout
from resilient._timeout import alarm as _alarm
from resilient._timeout import decorator as _timeout
from resilient._timeout.workers import ABANDONED, EXPIRED, WorkerPool
from resilient.metrics import MemorySink
from resilient.testing import FakeClock, use_clock


def test_a_signal_call_returning_exactly_at_its_deadline_is_in_time(
    fake_clock: FakeClock,
) -> None:
    """Under a fake clock, a signal-strategy call that returns with the clock exactly at
    its deadline returns its result."""

    @timeout(45, strategy="signal")
    def grade() -> str:
        fake_clock.advance(45)
        return "just in time"

    assert grade() == "just in time"


async def test_an_async_call_returning_exactly_at_its_deadline_is_in_time(
    fake_clock: FakeClock,
) -> None:
    """Under a fake clock, an async call that returns with the clock exactly at its
    deadline returns its result."""

    @timeout(45)
    async def grade() -> str:
        fake_clock.advance(45)
        return "just in time"

    assert await grade() == "just in time"


def test_nested_signal_calls_sharing_a_deadline_report_the_inner_one(
    fake_clock: FakeClock,
) -> None:
    """When an inner signal-strategy call's deadline is the outer one's, a sleep reaching
    it is the inner call's timeout: the error names the inner function."""

    @timeout(45, strategy="signal")
    def outer() -> None:
        inner()

    @timeout(45, strategy="signal")
    def inner() -> None:
        fake_clock.sleep(60)

    with pytest.raises(TimeoutExceededError) as caught:
        outer()
    assert caught.value.name.endswith(".<locals>.inner")
    assert fake_clock.monotonic() == 45.0


async def test_nested_async_calls_sharing_a_deadline_report_the_inner_one(
    fake_clock: FakeClock,
) -> None:
    """When an inner awaited call's deadline is the outer one's, a clock sleep reaching it
    is the inner call's timeout: the error names the inner function."""

    @timeout(45)
    async def outer() -> None:
        await inner()

    @timeout(45)
    async def inner() -> None:
        await fake_clock.asleep(60)

    with pytest.raises(TimeoutExceededError) as caught:
        await outer()
    assert caught.value.name.endswith(".<locals>.inner")
    assert fake_clock.monotonic() == 45.0


@pytest.mark.parametrize(("late", "why"), [(0.01, True), (0.0099, False)])
def test_a_signal_timeout_says_c_code_from_ten_milliseconds_late(late: float, why: bool) -> None:
    """A signal-strategy body interrupted 10 ms or more after its deadline gets a reason
    naming C code; one interrupted sooner gets none."""

    @timeout(5, strategy="signal")
    def body_of_the_call() -> None:
        (deadline,) = _alarm._active
        raise _alarm.AlarmFired(deadline, late)  # as the handler raises it, that late

    with pytest.raises(TimeoutExceededError) as caught:
        body_of_the_call()
    assert (caught.value.reason is not None) is why
    if why:
        assert caught.value.late_by == late
        assert "C code" in str(caught.value.reason)
    assert _alarm._active == []
    assert resilient.remaining() is None


def test_a_thread_call_returning_exactly_at_its_deadline_is_in_time(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a fake clock, a thread-strategy call collected with the clock exactly at its
    deadline returns its result."""
    # The caller waits for the body to return (not racing it to the clock).
    monkeypatch.setattr(_timeout, "_wait_on_clock", lambda clock, done, own, body: done.acquire())

    @timeout(45)
    def grade() -> str:
        fake_clock.advance(45)
        return "just in time"

    assert grade() == "just in time"


def test_the_tracked_body_notes_the_thread_it_runs_on() -> None:
    """The body of a sync call under a fake clock notes the ids of the thread it runs on,
    which the caller's autojump watches, and passes arguments through."""
    seen: list[tuple[int, int]] = []

    def work(x: int, *, y: int) -> int:
        seen.append((threading.get_ident(), threading.get_native_id()))
        return x + y

    body = _timeout._Tracked(work)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(body(1, y=2)))
    worker.start()
    worker.join()
    assert results == [3]
    assert [(body.thread, body.native)] == seen


@pytest.mark.realtime  # waits (a few ms) for the body to start and for it to end
def test_ctrl_c_while_waiting_under_a_fake_clock_abandons_the_running_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a fake clock, a KeyboardInterrupt while the caller waits reaches the caller,
    and the call still running is counted as abandoned until it ends."""
    pool = WorkerPool(max_workers=2, idle_timeout=1.0, reserve=0)
    monkeypatch.setattr(_timeout, "_pool", pool)
    started, release = threading.Event(), threading.Event()

    def interrupted(clock: object, done: object, own: float, body: object) -> bool:
        started.wait(2)
        raise KeyboardInterrupt

    monkeypatch.setattr(_timeout, "_wait_on_clock", interrupted)

    @timeout(45)
    def hang() -> None:
        started.set()
        release.wait(5)

    with use_clock(FakeClock()):
        try:
            with pytest.raises(KeyboardInterrupt):
                hang()
            assert pool.stats().abandoned == 1
        finally:
            release.set()
    end = time.monotonic() + 2.0
    while pool.stats().abandoned:
        assert time.monotonic() < end, "the abandoned call never ended"
        time.sleep(0.001)


def test_a_thread_call_queued_past_its_deadline_says_how_late_and_that_it_never_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the system clock, a thread-strategy call that never started before its deadline
    gets an error naming it, how late it was released and why."""
    monkeypatch.setattr(_timeout, "time", SimpleNamespace(monotonic=lambda: 105.0))
    layer = _timeout._Timeout(5.0, "thread")
    error = layer.unfinished("grade", EXPIRED, 100.0)
    assert error.name == "grade"
    assert error.late_by == 5.0
    assert error.reason == "it never started: every pool thread was busy until its deadline"


@pytest.mark.parametrize(("released", "why"), [(0.01, True), (0.0099, False), (-1.0, False)])
def test_a_thread_call_released_late_says_it_held_the_gil_from_ten_milliseconds(
    monkeypatch: pytest.MonkeyPatch, released: float, why: bool
) -> None:
    """On the system clock, a thread-strategy call whose caller was released 10 ms or more
    after its deadline gets a reason naming the GIL; sooner, it gets none."""
    monkeypatch.setattr(_timeout, "time", SimpleNamespace(monotonic=lambda: released))
    layer = _timeout._Timeout(5.0, "thread")
    error = layer.unfinished("grade", ABANDONED, 0.0)
    assert error.name == "grade"
    assert (error.reason is not None) is why
    if why:
        assert error.late_by == released
        assert "held the GIL" in str(error.reason)
    else:
        assert error.late_by is None


@pytest.mark.realtime  # the alarm comes after 20 ms of real time
def test_a_signal_alarm_after_the_fake_clock_passed_the_deadline_says_how_late() -> None:
    """Under a fake clock without autojump, a signal-strategy body interrupted by its
    real-time alarm after the clock went past its deadline is late by what the clock says."""
    clock = FakeClock()

    @timeout(0.02, strategy="signal")
    def spin() -> None:
        clock.advance(5)
        while True:
            pass

    with use_clock(clock), pytest.raises(TimeoutExceededError) as caught:
        spin()
    assert caught.value.late_by == pytest.approx(4.98)
    assert clock.monotonic() == 5.0


@pytest.mark.realtime  # an idle body: the alarm comes after 20 ms of real time
@pytest.mark.parametrize("ends", ["returns", "hangs"])
def test_a_signal_call_under_autojump_leaves_nothing_in_the_alarm_tables(ends: str) -> None:
    """After a signal-strategy call under an autojump clock ends, by returning or by
    timing out, none of its deadlines, patience or postponements stay registered."""
    clock = FakeClock(autojump=0.02)

    @timeout(45, strategy="signal")
    def call() -> str:
        if ends == "hangs":
            threading.Event().wait(2)
        return "done"

    with use_clock(clock):
        if ends == "hangs":
            with pytest.raises(TimeoutExceededError):
                call()
        else:
            assert call() == "done"
    assert (_alarm._active, _alarm._patience, _alarm._postponed) == ([], {}, {})


@pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"),
    reason="no scheduler statistics in /proc on this platform",
)
def test_a_threads_activity_is_its_running_and_waiting_time_from_the_scheduler() -> None:
    """What the autojump reads of a thread that /proc describes: the nanoseconds it spent
    on a CPU plus those it spent waiting for one, in seconds."""
    parked, release = threading.Event(), threading.Event()
    natives: list[int] = []

    def park() -> None:
        natives.append(threading.get_native_id())
        parked.set()
        release.wait(5)

    thread = threading.Thread(target=park)
    thread.start()
    try:
        parked.wait(2)
        (native,) = natives

        def scheduled() -> tuple[int, int]:
            with open(f"/proc/self/task/{native}/schedstat") as stats:
                on_cpu, waiting = stats.read().split()[:2]
            return int(on_cpu), int(waiting)

        while True:  # until it has blocked: a blocked thread's statistics stand still
            before = scheduled()
            active = _timeout._active_seconds(None, native)
            if scheduled() == before:
                break
        assert active == sum(before) / 1e9
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize(("late", "why"), [(0.02, True), (0.005, False)])
def test_an_alarm_noted_as_the_signal_call_returned_is_a_timeout_naming_it(
    late: float, why: bool
) -> None:
    """An alarm that the handler noted while the wrapper was busy with its own bookkeeping
    (the body had just returned) makes the call a timeout naming the function, with how
    late and, from 10 ms late, why."""

    @timeout(5, strategy="signal")
    def grade() -> str:
        (deadline,) = _alarm._active
        _alarm._late[deadline] = late  # as the handler notes it in the disarm step
        return "too late"

    with pytest.raises(TimeoutExceededError) as caught:
        grade()
    assert caught.value.name.endswith(".<locals>.grade")
    assert caught.value.late_by == (late if why else None)
    assert (caught.value.reason is not None) is why
    if why:
        assert "C code" in str(caught.value.reason)
    assert (_alarm._active, _alarm._late) == ([], {})


def test_a_timeout_is_counted_on_the_sink_given_to_the_decorator(fake_clock: FakeClock) -> None:
    """A timeout of a function decorated with metrics= is counted in timeouts_total on
    that sink, with no sink configured."""
    sink = MemorySink()

    @timeout(1, metrics=sink)
    def slow() -> None:
        fake_clock.advance(2)

    with pytest.raises(TimeoutExceededError) as caught:
        slow()
    assert sink.counter("timeouts_total", policy=caught.value.name) == 1


@pytest.mark.realtime  # the pool gives the body up after 20 ms of real time
def test_a_call_the_pool_gave_up_is_a_timeout_even_on_a_clock_that_did_not_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the system clock, a thread-strategy call that the pool gave up at its deadline is
    a timeout even if the clock read has not moved (a coarse clock): the caller never gets
    the pool's marker as a result."""
    monkeypatch.setattr(_timeout, "time", SimpleNamespace(monotonic=lambda: 100.0))
    release = threading.Event()

    @timeout(0.02)
    def hang() -> None:
        release.wait(5)

    try:
        with pytest.raises(TimeoutExceededError) as caught:
            hang()
    finally:
        release.set()
    assert caught.value.name.endswith(".<locals>.hang")


def test_a_thread_call_returning_exactly_at_its_system_clock_deadline_is_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the system clock, a thread-strategy call seen back with the clock exactly at its
    deadline returns its result."""
    readings = iter([100.0, 100.5])  # when the call starts, when it is seen back
    monkeypatch.setattr(_timeout, "time", SimpleNamespace(monotonic=lambda: next(readings)))

    @timeout(0.5)
    def grade() -> str:
        return "just in time"

    assert grade() == "just in time"


@pytest.mark.realtime  # the pool gives the hanging call up after 20 ms of real time
def test_one_decorator_on_two_functions_caps_each_function_on_its_own() -> None:
    """One timeout decorator applied to two functions counts their calls running past
    the deadline per function: one hanging with max_threads of them does not get the
    other refused."""
    bounded = timeout(0.02, max_threads=1)
    release = threading.Event()

    @bounded
    def hang() -> None:
        release.wait(5)

    @bounded
    def answer() -> int:
        return 42

    try:
        with pytest.raises(TimeoutExceededError):
            hang()
        with pytest.raises(TimeoutExceededError) as refused:
            hang()
        assert refused.value.reason is not None
        assert "max_threads=1" in refused.value.reason
        assert answer() == 42
    finally:
        release.set()

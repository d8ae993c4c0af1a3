"""The fake clock's autojump for sync calls, step by step on a scripted machine.

How the caller of a sync ``@timeout`` under a clock other than the system clock decides
that its body hangs: real time, the body's thread and what the platform says about that
thread's activity are scripted here (``Machine``), so every window, every look at the
activity and every jump happens at an exact, known moment without waiting for real. The
signal strategy's patience reads scripted activity the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from resilient import TimeoutExceededError, timeout
from resilient._timeout import decorator as _timeout
from resilient.testing import FakeClock, use_clock

_US = 1_000_000  # the machine counts real time in whole microseconds: windows end exactly
_BOOT = 1000.0  # the machine's real time when a test starts (not zero)
_SLICE = _timeout._SLICE


class SpinError(AssertionError):
    """The caller kept waiting long after any decision was due."""


class Machine:
    """Real time, one body on its thread, and the platform's reports of that thread.

    ``starts``: seconds after the call begins when the body starts on its thread (``None``:
    never). ``cpu``/``runnable``: the shares of real time the body then spends on a CPU and
    waiting for one. ``history``/``queued``: seconds the thread had spent on a CPU and
    waiting for one before. ``finishes``:
    seconds after the call begins when the body returns (``None``: never).
    ``proc``/``cpu_clock``: whether the platform keeps scheduler statistics per thread
    (``/proc``), and CPU clocks per thread. ``vanishes``: when the thread's statistics
    disappear. ``at``: actions run when real time reaches a moment (another thread).
    ``starts_in_look``: the body's thread starts while the caller looks at its activity,
    at the first look from that moment (the look itself still finds no thread).
    """

    def __init__(
        self,
        *,
        starts: float | None = 0.0,
        cpu: float = 0.0,
        runnable: float = 0.0,
        history: float = 0.0,
        queued: float = 0.0,
        finishes: float | None = None,
        proc: bool = True,
        cpu_clock: bool = True,
        vanishes: float | None = None,
        starts_in_look: float | None = None,
        at: dict[float, Callable[[], object]] | None = None,
        finished: Callable[[], bool] | None = None,
    ) -> None:
        self.us = round(_BOOT * _US)
        self.begun = self.us
        self.starts = None if starts is None else round(starts * _US)
        self.cpu, self.runnable, self.history, self.queued = cpu, runnable, history, queued
        self.finishes = None if finishes is None else round(finishes * _US)
        self.proc, self.cpu_clock = proc, cpu_clock
        self.vanishes = None if vanishes is None else round(vanishes * _US)
        self.starts_in_look = None if starts_in_look is None else round(starts_in_look * _US)
        self.actions = sorted((round(when * _US), action) for when, action in (at or {}).items())
        self.finished = finished
        self.waits: list[float] = []
        """Every timed wait on ``done``, in seconds, in order."""

    # Real time, as ``time.monotonic`` gives it to the code under test.
    def monotonic(self) -> float:
        return self.us / _US

    @property
    def elapsed(self) -> float:
        """Real seconds since the call began."""
        return (self.us - self.begun) / _US

    def _since(self) -> int:
        return self.us - self.begun

    # The body, as ``_Tracked`` shows it: its thread's ids once it has started.
    @property
    def thread(self) -> int | None:
        return None if self.starts is None or self._since() < self.starts else 7

    @property
    def native(self) -> int | None:
        return None if self.thread is None else 1007

    # The platform's report on a thread, as ``_active_seconds(thread, native)`` gives it.
    def active_seconds(self, thread: int | None, native: int | None) -> float | None:
        if self.starts_in_look is not None and self._since() >= self.starts_in_look:
            self.starts, self.starts_in_look = self._since(), None
            return None
        if self.starts is None or self._since() < self.starts:
            return None  # no such thread yet
        if self.vanishes is not None and self._since() >= self.vanishes:
            return None
        ran = self._since() - self.starts
        on_cpu = self.history * _US + self.cpu * ran
        if native is not None and self.proc:
            return round(on_cpu + self.queued * _US + self.runnable * ran) / _US
        if thread is not None and self.cpu_clock:
            return round(on_cpu) / _US
        return None

    # The call's ``done`` lock, released when the body returns.
    def is_done(self) -> bool:
        if self.finished is not None:
            return self.finished()
        return self.finishes is not None and self._since() >= self.finishes

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return self.is_done()
        if self.is_done():
            return True
        if timeout == -1:
            raise SpinError("waits for the body without a timeout")
        wait = round(float(timeout) * _US)
        if wait < 0:
            raise ValueError("timeout value must be a non-negative number")
        self.waits.append(wait / _US)
        if len(self.waits) > 100_000:
            raise SpinError(f"{len(self.waits)} waits, still not decided")
        end = self.us + wait
        if self.finishes is not None and self.finished is None:
            finish = self.begun + self.finishes
            if self.us <= finish < end:
                self._run_to(finish)
                return True
        self._run_to(end)
        if self.elapsed > 100:
            raise SpinError(f"still waiting after {self.elapsed} real seconds")
        return False

    def _run_to(self, us: int) -> None:
        while self.actions and self.begun + self.actions[0][0] <= us:
            when, action = self.actions.pop(0)
            self.us = self.begun + when
            action()
        self.us = us


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Machine]:
    """Builds a ``Machine`` and lets the waiting code read real time and activity from it."""

    def build(**script: Any) -> Machine:
        scripted = Machine(**script)
        monkeypatch.setattr(_timeout, "time", SimpleNamespace(monotonic=scripted.monotonic))
        monkeypatch.setattr(_timeout, "_active_seconds", scripted.active_seconds)
        return scripted

    return build


class RealTimeClock:
    """A user's clock that cannot be moved: it reads the machine's real time."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def monotonic(self) -> float:
        return self.machine.monotonic()


def _wait(clock: Any, machine: Machine, own: float) -> bool:
    return _timeout._wait_on_clock(clock, machine, own, machine)  # type: ignore[arg-type]


# A clock that cannot be moved is real time: the caller waits on it in real time.


def test_under_a_real_time_clock_a_body_that_returns_in_time_is_collected_when_it_returns(
    machine: Callable[..., Machine],
) -> None:
    """Under a user's real-time clock, a body returning before the deadline is collected
    at the moment it returns."""
    scene = machine(finishes=10.0)
    assert _wait(RealTimeClock(scene), scene, _BOOT + 45) is True
    assert scene.elapsed == 10.0


def test_under_a_real_time_clock_a_body_that_never_returns_is_given_up_at_the_deadline(
    machine: Callable[..., Machine],
) -> None:
    """Under a user's real-time clock, the caller gives up a hanging body when that clock
    reaches the deadline, not before, not after, in one wait (it does not poll)."""
    scene = machine()
    assert _wait(RealTimeClock(scene), scene, _BOOT + 45) is False
    assert scene.elapsed == 45.0
    assert scene.waits == [45.0]


def test_under_a_real_time_clock_a_deadline_less_than_a_second_away_is_waited_for(
    machine: Callable[..., Machine],
) -> None:
    """Under a user's real-time clock, a body given half a second that returns after 0.3 s
    is collected."""
    scene = machine(finishes=0.3)
    assert _wait(RealTimeClock(scene), scene, _BOOT + 0.5) is True


@pytest.mark.parametrize("kind", ["real time", "fake clock"])
def test_at_the_deadline_a_returned_body_is_collected_and_a_running_one_given_up(
    machine: Callable[..., Machine], kind: str
) -> None:
    """With the clock already at the deadline, the caller collects a body that has
    returned, and gives up one that has not without waiting."""
    for finishes, collected in ((0.0, True), (None, False)):
        scene = machine(finishes=finishes)
        clock: Any = RealTimeClock(scene) if kind == "real time" else FakeClock(45.0)
        assert _wait(clock, scene, clock.monotonic()) is collected
        assert scene.elapsed == 0.0


# A fake clock without autojump only moves when something moves it.


def test_a_fake_clock_moved_to_the_deadline_by_another_thread_releases_the_caller(
    machine: Callable[..., Machine],
) -> None:
    """Without autojump, a hanging body is given up the moment another thread moves the
    fake clock to its deadline, and the clock is left where that thread put it."""
    clock = FakeClock()
    scene = machine(at={3.0: lambda: clock.advance(45)})
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 3.0
    assert clock.monotonic() == 45.0


def test_a_fake_clock_without_autojump_waits_for_a_body_however_long_it_takes(
    machine: Callable[..., Machine],
) -> None:
    """Without autojump, a body that neither computes nor moves the clock is waited for in
    real time until it returns, even with half a second left on the fake clock."""
    clock = FakeClock()
    scene = machine(finishes=0.3)
    assert _wait(clock, scene, 0.5) is True
    assert clock.monotonic() == 0.0


# With autojump, a body that is neither running nor runnable for a whole window hangs.


def test_a_body_idle_for_one_window_makes_the_clock_jump_to_its_deadline(
    machine: Callable[..., Machine],
) -> None:
    """A started body that uses no CPU for autojump real seconds is given up then, and the
    clock jumps exactly to the deadline, even on a thread that computed and waited for a
    CPU a lot before."""
    clock = FakeClock(100.0, autojump=0.5)
    scene = machine(history=3.0, queued=2.0)
    assert _wait(clock, scene, 145.0) is False
    assert scene.elapsed == 0.5
    assert clock.monotonic() == 145.0


def test_a_body_computing_for_its_windows_is_let_run_until_it_returns(
    machine: Callable[..., Machine],
) -> None:
    """A body on the CPU for a share of each window is working: it runs for many windows
    and is collected when it returns, and the clock does not move."""
    clock = FakeClock(autojump=0.5)
    scene = machine(cpu=0.5, finishes=2.2)
    assert _wait(clock, scene, 45.0) is True
    assert scene.elapsed == 2.2
    assert clock.monotonic() == 0.0


def test_a_body_using_exactly_the_busy_share_of_a_window_is_working(
    machine: Callable[..., Machine],
) -> None:
    """A body that used exactly 2 % of the window on the CPU is working, not hanging."""
    clock = FakeClock(autojump=0.5)
    scene = machine(cpu=_timeout._BUSY, finishes=0.8)
    assert _wait(clock, scene, 45.0) is True
    assert clock.monotonic() == 0.0


def test_a_body_using_less_than_the_busy_share_of_a_window_hangs(
    machine: Callable[..., Machine],
) -> None:
    """A body that used less than 2 % of the window on the CPU is taken to hang."""
    clock = FakeClock(autojump=0.5)
    scene = machine(cpu=_timeout._BUSY / 2, finishes=0.8)
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 0.5
    assert clock.monotonic() == 45.0


def test_a_body_waiting_for_a_cpu_on_a_busy_machine_is_not_taken_to_hang(
    machine: Callable[..., Machine],
) -> None:
    """A body that is runnable but gets no CPU (the machine is busy) is let run, as the
    scheduler's statistics show it waiting for a CPU, not for an answer."""
    clock = FakeClock(autojump=0.5)
    scene = machine(runnable=0.9, finishes=1.7)
    assert _wait(clock, scene, 45.0) is True
    assert clock.monotonic() == 0.0


def test_without_scheduler_statistics_the_cpu_time_tells_a_working_body(
    machine: Callable[..., Machine],
) -> None:
    """Where the platform keeps no scheduler statistics, a body computing on the CPU is
    still let run, from its thread's CPU clock."""
    clock = FakeClock(autojump=0.5)
    scene = machine(cpu=0.5, finishes=1.7, proc=False)
    assert _wait(clock, scene, 45.0) is True
    assert clock.monotonic() == 0.0


def test_without_scheduler_statistics_an_idle_body_is_given_up_after_one_window(
    machine: Callable[..., Machine],
) -> None:
    """Where the platform keeps no scheduler statistics, a started body that uses no CPU
    is given up exactly one window after the call began, from its thread's CPU clock."""
    clock = FakeClock(autojump=0.5)
    scene = machine(history=3.0, proc=False)
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 0.5
    assert clock.monotonic() == 45.0


def test_where_the_platform_cannot_tell_a_body_running_one_window_is_taken_to_hang(
    machine: Callable[..., Machine],
) -> None:
    """Where neither scheduler statistics nor CPU clocks exist, a started body still
    running after one window is taken to hang, however hard it computes."""
    clock = FakeClock(autojump=0.5)
    scene = machine(cpu=1.0, proc=False, cpu_clock=False)
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 0.5
    assert clock.monotonic() == 45.0


def test_a_body_finishing_as_its_window_closes_is_collected_without_a_jump(
    machine: Callable[..., Machine],
) -> None:
    """A body that returns just as an idle window closes is collected, and the clock does
    not jump."""
    clock = FakeClock(autojump=0.5)
    scene = machine(finishes=0.5)
    assert _wait(clock, scene, 45.0) is True
    assert clock.monotonic() == 0.0


def test_a_body_released_by_the_jump_itself_is_collected(
    machine: Callable[..., Machine],
) -> None:
    """A body that returns as soon as the clock reaches its deadline (it watches the
    clock) is collected after the jump, not given up."""
    clock = FakeClock(autojump=0.5)
    scene = machine(finished=lambda: clock.monotonic() >= 45.0)
    assert _wait(clock, scene, 45.0) is True
    assert scene.elapsed == 0.5
    assert clock.monotonic() == 45.0


# Bodies that start late, and threads that end.


def test_a_body_starting_late_gets_a_whole_window_from_its_start(
    machine: Callable[..., Machine],
) -> None:
    """A body that starts 0.25 s late (on a thread that computed and waited for a CPU
    before) and then waits without computing is given up one whole window after it
    started, not one window after the call."""
    clock = FakeClock(autojump=0.5)
    scene = machine(starts=0.25, history=3.0, queued=2.0)
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 0.75
    assert clock.monotonic() == 45.0


@pytest.mark.parametrize("proc", [True, False], ids=["scheduler statistics", "CPU clock"])
def test_a_body_starting_late_that_computes_is_let_run(
    machine: Callable[..., Machine], proc: bool
) -> None:
    """A body that starts 0.25 s late and then computes is collected when it returns,
    whether the platform reports its activity from scheduler statistics or a CPU clock."""
    clock = FakeClock(autojump=0.5)
    scene = machine(starts=0.25, cpu=1.0, finishes=1.0, proc=proc)
    assert _wait(clock, scene, 45.0) is True
    assert clock.monotonic() == 0.0


@pytest.mark.parametrize(("autojump", "given_up"), [(0.1, 1.0), (1.5, 1.5)])
def test_a_body_that_never_starts_is_given_up_after_the_start_allowance(
    machine: Callable[..., Machine], autojump: float, given_up: float
) -> None:
    """A body queued behind other calls that never starts is given up after one real
    second, or after autojump when that is longer."""
    clock = FakeClock(autojump=autojump)
    scene = machine(starts=None)
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == given_up
    assert clock.monotonic() == 45.0


def test_a_body_starting_between_two_looks_at_its_activity_never_fails_the_caller(
    machine: Callable[..., Machine],
) -> None:
    """A queued body whose thread starts just after the caller's last look that found no
    thread, as its start allowance runs out, never fails the caller: the wait ends with a
    verdict."""
    clock = FakeClock(autojump=0.5)
    scene = machine(starts=None, starts_in_look=1.0)
    assert _wait(clock, scene, 45.0) in (True, False)


def test_a_body_whose_thread_ends_gets_one_more_window_before_it_is_judged(
    machine: Callable[..., Machine],
) -> None:
    """When the statistics of a working body's thread disappear (the thread ended), the
    caller looks again for one more window before it gives the call up."""
    clock = FakeClock(autojump=0.5)
    scene = machine(cpu=1.0, vanishes=0.7)
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 1.5
    assert clock.monotonic() == 45.0


# The signal strategy asks a patience when a window ends on the main thread.


class Readings:
    """The main thread's activity as the platform reports it, scripted: scheduler
    statistics (``None``: the platform keeps none) and the thread's CPU time."""

    def __init__(self, scheduled: float | None, cpu: float) -> None:
        self.scheduled, self.cpu = scheduled, cpu

    def active_seconds(self, thread: int | None, native: int | None) -> float | None:
        return None if native is None else self.scheduled

    def thread_time(self) -> float:
        return self.cpu


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> Readings:
    """Scripted readings of the main thread's activity, read by the signal strategy."""
    scripted = Readings(scheduled=3.0, cpu=1.0)
    monkeypatch.setattr(_timeout, "_active_seconds", scripted.active_seconds)
    monkeypatch.setattr(
        _timeout,
        "time",
        SimpleNamespace(thread_time=scripted.thread_time, monotonic=time.monotonic),
    )
    return scripted


def test_a_body_running_or_runnable_for_its_share_of_a_window_gets_another(
    readings: Readings,
) -> None:
    """Asked as a window ends, the patience gives a body that was running or runnable
    for at least 2 % of it one more window, and none to a body that was not."""
    readings.scheduled = 0.0
    patience = _timeout._Patience(0.5)
    # Seconds running or runnable so far, as each window ends: 0.01 s is exactly 2 %.
    for scheduled, more in ((0.01, 0.5), (0.51, 0.5), (0.519, None), (0.519, None)):
        readings.scheduled = scheduled
        readings.cpu += 1.0  # the scheduler's statistics count, not the CPU clock
        assert patience() == more, scheduled


def test_without_scheduler_statistics_the_patience_reads_the_cpu_time(
    readings: Readings,
) -> None:
    """Where the platform keeps no scheduler statistics, the patience judges the window
    by the main thread's CPU time."""
    readings.scheduled = None
    readings.cpu = 0.0
    patience = _timeout._Patience(0.5)
    for cpu, more in ((0.01, 0.5), (0.019, None)):
        readings.cpu = cpu
        assert patience() == more, cpu


class MovableClock:
    """A user's clock that can be moved but has no autojump at all."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_movable_clock_without_an_autojump_attribute_never_jumps(
    machine: Callable[..., Machine],
) -> None:
    """A movable user clock that has no autojump attribute is waited on like a fake clock
    without autojump: a body that neither computes nor returns is given up only when
    another thread moves the clock to its deadline."""
    clock = MovableClock()
    scene = machine(at={5.0: lambda: clock.advance(45)})
    assert _wait(clock, scene, 45.0) is False
    assert scene.elapsed == 5.0


@pytest.mark.realtime  # the earlier alarm comes after 20 ms of real time
@pytest.mark.usefixtures("readings")  # the main thread reads as idle in every window
def test_nested_signal_calls_under_autojump_fire_the_earlier_deadline() -> None:
    """Under an autojump clock, when an inner signal-strategy call inside an outer one
    hangs, the outer deadline (the earlier) fires: the clock jumps to it and the error
    names the outer function."""
    clock = FakeClock(autojump=0.02)
    gate = threading.Event()

    @timeout(45, strategy="signal")
    def outer() -> None:
        inner()

    @timeout(100, strategy="signal")
    def inner() -> None:
        gate.wait(2)

    with use_clock(clock), pytest.raises(TimeoutExceededError) as caught:
        outer()
    assert caught.value.name.endswith(".<locals>.outer")
    assert clock.monotonic() == 45.0

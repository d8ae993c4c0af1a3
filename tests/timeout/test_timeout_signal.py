"""@timeout(strategy="signal"): alarms that land in the wrapper's own bookkeeping."""

from __future__ import annotations

import signal
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from types import FrameType, SimpleNamespace
from typing import Any

import pytest
from garbage import collect

import resilient
import resilient.testing
from resilient._timeout import alarm as _alarm
from resilient.testing import FakeClock


@pytest.fixture
def alarm_blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No real SIGALRM during the test, so only simulated deliveries happen: the timer is
    never set, and the signal is held back on this thread (blocking it here alone would
    not do: the OS hands a process's signal to any thread that does not block it, and
    Python then runs the handler on the main thread all the same)."""
    monkeypatch.setattr(signal, "setitimer", lambda which, seconds, interval=0.0: (0.0, 0.0))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


def _deliver_at_every_line(after_body: bool) -> Any:
    """A trace function handing SIGALRM to the handler between two lines, as CPython does.

    With ``after_body`` it starts once the decorated function has returned (the disarm
    step); otherwise it delivers only until the body starts (the arm step).
    """
    state = {"body_returned": False, "in_body": False, "deliveries": 0}

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_name == "body_of_the_call":
            state["in_body"] = event != "return"
            if event == "return":
                state["body_returned"] = True
            return tracer
        if after_body:
            deliver = state["body_returned"]
        else:
            deliver = not state["in_body"] and not state["body_returned"]
        if event == "line" and deliver:
            state["deliveries"] += 1
            _alarm._on_alarm(signal.SIGALRM, frame)
        return tracer

    tracer.state = state  # type: ignore[attr-defined]
    return tracer


def _outcome_under(tracer: Any, call: Callable[[], object]) -> object:
    """``call()``'s result, or what it raised, with ``tracer`` as this thread's trace
    function; the one in force before (a coverage tracer's, when one runs) is put back."""
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return call()
    except BaseException as error:
        return error
    finally:
        sys.settrace(previous)


@pytest.mark.parametrize("after_body", [True, False], ids=["disarm step", "arm step"])
@pytest.mark.usefixtures("alarm_blocked")
def test_alarm_in_the_bookkeeping_never_escapes(
    monkeypatch: pytest.MonkeyPatch, after_body: bool
) -> None:
    """An alarm handled at any line of the arm or disarm step gives the result or a timeout.

    The internal AlarmFired never reaches the caller and the deadline is forgotten.
    """
    monkeypatch.setattr(_alarm, "_EARLY", 1e9)  # every deadline in force counts as reached

    @resilient.timeout(5, strategy="signal")
    def body_of_the_call() -> int:
        return 1

    tracer = _deliver_at_every_line(after_body)
    outcome = _outcome_under(tracer, body_of_the_call)
    leftover = list(_alarm._active)
    _alarm._active.clear()  # never leave a deadline to later tests, even when failing
    assert tracer.state["deliveries"] > 0
    assert outcome == 1 or isinstance(outcome, resilient.TimeoutExceededError), outcome
    assert leftover == []


class _CallableTracer:
    """A trace function written as a callable object."""

    def __init__(self, local: Any) -> None:
        self.local = local

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        self.local(frame, event, arg)
        return self


@pytest.mark.parametrize(
    "kind", ["the global trace function", "a local trace function", "a callable object"]
)
@pytest.mark.usefixtures("alarm_blocked")
def test_an_alarm_in_any_kind_of_tracer_of_the_disarm_step_never_escapes(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """An alarm handled in a trace function (a debugger's) while it traces the disarm step
    is deferred: Python runs the handler in the tracer's own frame, and what it raises
    would land in the traced line, skipping the step that forgets the deadline."""
    monkeypatch.setattr(_alarm, "_EARLY", 1e9)
    monkeypatch.setattr(_alarm, "_armed_for", _alarm._armed_for)

    @resilient.timeout(5, strategy="signal")
    def body_of_the_call() -> int:
        return 1

    deliveries, returned = [0], [False]

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_name == "body_of_the_call":
            returned[0] = event == "return"
        elif event == "line" and returned[0]:  # the disarm step
            deliveries[0] += 1
            _alarm._armed_for = time.monotonic()  # as if our timer had just fired
            _alarm._on_alarm(signal.SIGALRM, sys._getframe())  # in the tracer's frame
        return local

    def global_tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local(frame, event, arg)

    tracer = {
        "the global trace function": local,
        "a local trace function": global_tracer,
        "a callable object": _CallableTracer(local),
    }[kind]
    outcome = _outcome_under(tracer, body_of_the_call)
    leftover, left_deadline = list(_alarm._active), resilient.remaining()
    _alarm._active.clear()
    assert deliveries[0] > 0
    assert outcome == 1 or isinstance(outcome, resilient.TimeoutExceededError), outcome
    assert leftover == []
    assert left_deadline is None


def _body_tracer(deliver: bool) -> Any:
    """A trace function that, with ``deliver``, hands SIGALRM to the handler in its own
    frame at every line of the body ``spin``."""

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if deliver and event == "line" and frame.f_code.co_name == "spin":
            _alarm._armed_for = time.monotonic()  # as if our timer had just fired
            _alarm._on_alarm(signal.SIGALRM, sys._getframe())
        return tracer

    return tracer


@pytest.mark.usefixtures("alarm_blocked")
def test_an_alarm_in_a_tracer_of_the_body_interrupts_it_once_past_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alarms that keep landing in a trace function tracing the body (a debugger stopped
    in it, a tracer taking nearly all the time) are raised there once the deadline is
    ``_GRACE`` late: the body is interrupted, never left running for good."""
    monkeypatch.setattr(_alarm, "_armed_for", _alarm._armed_for)
    real = time.monotonic
    monkeypatch.setattr(_alarm, "time", SimpleNamespace(monotonic=lambda: real() + 10.0))
    lines = [0]

    @resilient.timeout(5, strategy="signal")
    def spin() -> int:
        for _ in range(100):
            lines[0] += 1
        return lines[0]

    previous = sys.gettrace()
    sys.settrace(_body_tracer(deliver=True))
    try:
        with pytest.raises(resilient.TimeoutExceededError):
            spin()
    finally:
        sys.settrace(previous)
        _alarm._active.clear()
    assert lines[0] < 100
    assert resilient.remaining() is None


@pytest.mark.usefixtures("alarm_blocked")
def test_an_alarm_in_a_tracer_of_the_body_waits_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An alarm landing in a trace function tracing the body, just past the deadline, is
    deferred (raised there, Python would switch the tracer off); a body that returns
    meanwhile is a timeout."""
    monkeypatch.setattr(_alarm, "_EARLY", 1e9)  # reached, and late by nothing
    monkeypatch.setattr(_alarm, "_armed_for", _alarm._armed_for)

    @resilient.timeout(5, strategy="signal")
    def spin() -> int:
        total = 0
        for step in range(20):
            total += step
        return total

    tracer = _body_tracer(deliver=True)
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with pytest.raises(resilient.TimeoutExceededError):
            spin()
        still_tracing = sys.gettrace() is tracer
    finally:
        sys.settrace(previous)
        _alarm._active.clear()
    assert still_tracing


@pytest.mark.usefixtures("alarm_blocked")
def test_bookkeeping_paused_past_the_grace_is_looked_at_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An alarm landing in bookkeeping just after the deadline is looked at again within a
    millisecond; once past ``_GRACE`` (a debugger paused in a wrapper's lines) no more
    than a hundred times a second."""
    monkeypatch.setattr(_alarm, "_WRAPPERS", set(_alarm._WRAPPERS))
    monkeypatch.setattr(_alarm, "_armed_for", _alarm._armed_for)
    timers: list[float] = []
    monkeypatch.setattr(
        signal,
        "setitimer",
        lambda which, seconds, interval=0.0: timers.append(seconds) or (0.0, 0.0),
    )

    def wrapper_lines() -> FrameType:
        return sys._getframe()

    _alarm.protect(wrapper_lines.__code__)
    frame = wrapper_lines()
    looks: list[float] = []  # how long after each alarm the handler looks again
    for late in (0.0, 1.0):
        when = time.monotonic() - late
        _alarm.arm(when, 0.0)
        timers.clear()
        try:
            _alarm._armed_for = time.monotonic()
            _alarm._on_alarm(signal.SIGALRM, frame)
        finally:
            _alarm.disarm(when)
        looks.append(timers[-1])
    assert looks[0] <= 1e-3
    assert looks[1] >= 0.01


@pytest.mark.usefixtures("alarm_blocked")
def test_an_alarm_while_a_clocked_call_reports_its_deadline_never_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a test clock, an alarm handled while the wrapper makes the timeout error of a
    body that slept past the clock's deadline (a step the wrapper calls, not the body) is
    deferred: the caller gets the timeout, and no deadline stays behind."""
    monkeypatch.setattr(_alarm, "_EARLY", 1e9)
    monkeypatch.setattr(_alarm, "_armed_for", _alarm._armed_for)

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if event == "call" and frame.f_code.co_name == "expired":
            _alarm._armed_for = time.monotonic()  # as if our timer had just fired
            _alarm._on_alarm(signal.SIGALRM, frame)  # as CPython would, in that frame
        return tracer

    with resilient.testing.use_clock(FakeClock()) as clock:

        @resilient.timeout(5, strategy="signal")
        def body_of_the_call() -> None:
            clock.sleep(10)

        outcome = _outcome_under(tracer, body_of_the_call)
    leftover, left_deadline = list(_alarm._active), resilient.remaining()
    _alarm._active.clear()
    assert isinstance(outcome, resilient.TimeoutExceededError), outcome
    assert leftover == []
    assert left_deadline is None


@pytest.mark.usefixtures("alarm_blocked")
def test_more_time_given_after_a_deferred_alarm_is_not_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deadline whose alarm was deferred (it landed in bookkeeping), then extended by its
    patience at the next look, is not reported late when the call returns in time."""
    monkeypatch.setattr(_alarm, "_WRAPPERS", set(_alarm._WRAPPERS))
    monkeypatch.setattr(_alarm, "_armed_for", _alarm._armed_for)

    def wrapper_lines() -> FrameType:
        return sys._getframe()

    _alarm.protect(wrapper_lines.__code__)
    answers = iter([None, 1.0])  # fire; then: the body works, give it a second more
    when = time.monotonic() - 0.001
    _alarm.patient(when, lambda: next(answers))
    _alarm.arm(when, 0.0)
    try:
        _alarm._armed_for = time.monotonic()
        _alarm._on_alarm(signal.SIGALRM, wrapper_lines())  # deferred: the wrapper's lines
        _alarm._armed_for = time.monotonic()
        _alarm._on_alarm(signal.SIGALRM, sys._getframe())  # the body's: one second more
    finally:
        late = _alarm.disarm(when)
        _alarm.patient(when, None)
    assert late is None


@pytest.mark.usefixtures("alarm_blocked")
def test_no_alarm_is_raised_outside_a_decorated_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """After calls whose alarms came in the disarm step, an alarm in other code does nothing."""
    monkeypatch.setattr(_alarm, "_EARLY", 1e9)

    @resilient.timeout(5, strategy="signal")
    def body_of_the_call() -> int:
        return 1

    for _ in range(3):
        _outcome_under(_deliver_at_every_line(after_body=True), body_of_the_call)
    try:
        _alarm._armed_for = time.monotonic()  # as if our timer had just fired
        _alarm._on_alarm(signal.SIGALRM, sys._getframe())  # in the test's own code
    finally:
        _alarm._active.clear()


@pytest.mark.realtime
def test_calls_ending_at_their_deadline_get_a_result_or_a_timeout() -> None:
    """Busy loops lasting their budget to within 20 µs: result or timeout, nothing else."""
    budget = 0.002

    @resilient.timeout(budget, strategy="signal")
    def spin(seconds: float) -> float:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return seconds

    outcomes: dict[str, int] = {}
    for index in range(400):
        seconds = budget - 2e-5 + (index % 21) * 2e-6
        try:
            spin(seconds)
            kind = "result"
        except resilient.TimeoutExceededError:
            kind = "timeout"
        except BaseException as error:  # the bug: anything else reaching the caller
            kind = type(error).__name__
            _alarm._active.clear()
        outcomes[kind] = outcomes.get(kind, 0) + 1
    assert set(outcomes) <= {"result", "timeout"}, outcomes
    assert _alarm._active == []
    end = time.perf_counter() + 0.01  # a pending timer fires in plain code: harmless
    while time.perf_counter() < end:
        pass


@pytest.mark.realtime
def test_nested_inner_timeout_then_the_outer_still_fires() -> None:
    """An inner signal timeout that fired leaves the enclosing one armed."""

    @resilient.timeout(0.03, strategy="signal")
    def outer() -> None:
        with pytest.raises(resilient.TimeoutExceededError):
            inner()
        while True:
            pass

    @resilient.timeout(0.005, strategy="signal")
    def inner() -> None:
        while True:
            pass

    started = time.perf_counter()
    with pytest.raises(resilient.TimeoutExceededError, match="outer"):
        outer()
    assert time.perf_counter() - started < 0.5


def test_signal_strategy_clears_its_deadline_after_return() -> None:
    """After a call returns, or raises, no deadline of it stays registered or published."""

    @resilient.timeout(5, strategy="signal")
    def ok() -> float | None:
        return resilient.remaining()

    @resilient.timeout(5, strategy="signal")
    def fails() -> None:
        raise ValueError("mine")

    left = ok()
    assert left is not None
    assert 4 < left <= 5
    with pytest.raises(ValueError, match="mine"):
        fails()
    assert _alarm._active == []
    assert resilient.remaining() is None


@pytest.mark.realtime
def test_signal_strategy_says_when_c_code_delayed_the_alarm() -> None:
    """A body in C code at its deadline stops when C returns; the error says how late, and why."""

    @resilient.timeout(0.002, strategy="signal")
    def compute() -> int:
        return sum(range(2_000_000))  # C code: no signal handler runs until it returns

    with pytest.raises(resilient.TimeoutExceededError) as caught:
        compute()
    late = caught.value.late_by
    assert late is not None
    assert late >= 0.01
    assert "C code" in str(caught.value)
    assert f"released {late:.3g}s after the deadline" in str(caught.value)


@pytest.mark.realtime
def test_a_builtin_under_the_signal_strategy_is_stopped_at_its_deadline() -> None:
    """A builtin under the signal strategy is interrupted at its deadline, not when it returns."""
    nap = resilient.timeout(0.02, strategy="signal")(time.sleep)
    started = time.perf_counter()
    with pytest.raises(resilient.TimeoutExceededError):
        nap(0.3)
    assert time.perf_counter() - started < 0.2


@pytest.mark.realtime
def test_a_builtin_that_overruns_in_c_says_how_late_and_why() -> None:
    """A builtin held in C past its deadline raises with late_by set and a reason naming C code."""
    total = resilient.timeout(0.002, strategy="signal")(sum)
    with pytest.raises(resilient.TimeoutExceededError) as caught:
        total(range(2_000_000))
    late = caught.value.late_by
    assert late is not None
    assert late > 0
    assert caught.value.reason is not None
    assert "C code" in caught.value.reason


def test_a_dropped_function_leaves_no_code_behind() -> None:
    """A function decorated at run time with the signal strategy, once dropped, is not kept
    alive through its code by the alarm's record of bodies."""
    namespace: dict[str, Any] = {}
    exec("def made_at_run_time():\n    return 1\n", namespace)
    decorated = resilient.timeout(5, strategy="signal")(namespace.pop("made_at_run_time"))
    code = weakref.ref(decorated.__wrapped__.__code__)
    del decorated
    collect()
    assert code() is None

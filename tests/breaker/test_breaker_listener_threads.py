"""Listeners run in the threads of the calls they hear: concurrently, unless serial=True."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from strategies import BoomError

import resilient
from resilient import BreakerConfig, BreakerEvent, CallRecorded, CircuitBreaker, ConfigError
from resilient.testing import FakeClock

WAIT = 5.0  # seconds a thread may take to do what should take microseconds


def ok() -> str:
    return "ok"


class Overlap:
    """A listener that holds the first call until released, and notes how many run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.heard = 0
        self.first_inside = threading.Event()
        self.second_inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, event: BreakerEvent) -> None:
        with self.lock:
            self.inside += 1
            self.heard += 1
            self.peak = max(self.peak, self.inside)
            first = self.heard == 1
        (self.first_inside if first else self.second_inside).set()
        if first:
            self.release.wait(WAIT)
        with self.lock:
            self.inside -= 1


def two_calls_at_once(b: CircuitBreaker, listener: Overlap, *, settle: float) -> None:
    """One call whose listener waits; a second call from another thread meanwhile."""
    one = threading.Thread(target=b.call, args=(ok,))
    two = threading.Thread(target=b.call, args=(ok,))
    one.start()
    assert listener.first_inside.wait(WAIT)
    two.start()
    listener.second_inside.wait(settle)
    listener.release.set()
    one.join(WAIT)
    two.join(WAIT)


def test_a_listener_runs_in_several_threads_at_once(fake_clock: FakeClock) -> None:
    """A plain listener is called by two calls' threads at the same time."""
    listener = Overlap()
    b = CircuitBreaker("threads-plain", BreakerConfig())
    b.add_listener(listener)
    two_calls_at_once(b, listener, settle=WAIT)
    assert (listener.peak, listener.heard) == (2, 2)


@pytest.mark.realtime
def test_a_serial_listener_runs_in_one_thread_at_a_time(fake_clock: FakeClock) -> None:
    """serial=True: the second call's listener waits until the first one returns."""
    listener = Overlap()
    b = CircuitBreaker("threads-serial", BreakerConfig())
    b.add_listener(listener, serial=True)
    two_calls_at_once(b, listener, settle=0.05)
    assert (listener.peak, listener.heard) == (1, 2)


@pytest.mark.realtime
def test_a_global_serial_listener_runs_in_one_thread_at_a_time(fake_clock: FakeClock) -> None:
    """resilient.add_listener(..., serial=True) serializes across breakers too."""
    listener = Overlap()
    resilient.add_listener(listener, serial=True)
    b = CircuitBreaker("threads-serial-global", BreakerConfig())
    two_calls_at_once(b, listener, settle=0.05)
    resilient.remove_listener(listener)
    assert (listener.peak, listener.heard) == (1, 2)


@pytest.mark.realtime
def test_a_listener_serial_on_two_breakers_runs_in_one_thread_at_a_time(
    fake_clock: FakeClock,
) -> None:
    """One listener registered serial=True on two breakers: a call on the second breaker
    waits for the listener to return from the first one's event."""
    listener = Overlap()
    first = CircuitBreaker("threads-serial-first", BreakerConfig())
    second = CircuitBreaker("threads-serial-second", BreakerConfig())
    first.add_listener(listener, serial=True)
    second.add_listener(listener, serial=True)
    one = threading.Thread(target=first.call, args=(ok,))
    two = threading.Thread(target=second.call, args=(ok,))
    one.start()
    assert listener.first_inside.wait(WAIT)
    two.start()
    listener.second_inside.wait(0.05)
    listener.release.set()
    one.join(WAIT)
    two.join(WAIT)
    assert (listener.peak, listener.heard) == (1, 2)


def test_serial_locks_are_let_go_with_their_registrations(fake_clock: FakeClock) -> None:
    """The lock a serial listener's registrations share is freed when the last one is removed."""
    from resilient._runtime import listeners

    def listener(event: BreakerEvent) -> None:
        pass

    b = CircuitBreaker("serial-let-go", BreakerConfig())
    b.add_listener(listener, serial=True)
    resilient.add_listener(listener, serial=True)
    assert listener in listeners._serial_locks
    b.remove_listener(listener)
    resilient.remove_listener(listener)
    assert listener not in listeners._serial_locks


def test_a_serial_listener_that_raises_is_logged_once_and_breaks_no_call(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising serial listener: the calls go on, one log line, and its lock is freed."""
    heard: list[BreakerEvent] = []

    def broken(event: BreakerEvent) -> None:
        heard.append(event)
        raise RuntimeError("listener bug")

    b = CircuitBreaker("serial-broken", BreakerConfig())
    b.add_listener(broken, serial=True)
    with caplog.at_level(logging.ERROR, logger="resilient"):
        assert b.call(ok) == "ok"
        assert b.call(ok) == "ok"
    assert len(heard) == 2
    assert len([r for r in caplog.records if "listener" in r.getMessage()]) == 1


def test_a_serial_listener_may_emit_events_itself(fake_clock: FakeClock) -> None:
    """A serial listener calling a guarded function (new events, same thread) is not stuck."""
    inner = CircuitBreaker("serial-inner", BreakerConfig())
    heard: list[str] = []

    def listener(event: BreakerEvent) -> None:
        heard.append(event.name)
        if event.name == "serial-outer":
            inner.call(ok)

    resilient.add_listener(listener, serial=True)
    CircuitBreaker("serial-outer", BreakerConfig()).call(ok)
    resilient.remove_listener(listener)
    assert heard == ["serial-outer", "serial-inner"]


def test_remove_listener_finds_a_serial_listener(fake_clock: FakeClock) -> None:
    """remove_listener(listener) stops a listener registered with serial=True."""
    heard: list[BreakerEvent] = []
    b = CircuitBreaker("serial-removed", BreakerConfig())
    b.add_listener(heard.append, serial=True)
    resilient.add_listener(heard.append, serial=True, before_call=True)
    b.call(ok)
    b.remove_listener(heard.append)
    resilient.remove_listener(heard.append)
    b.call(ok)
    assert [type(e).__name__ for e in heard] == ["CallAdmitted", "CallRecorded", "CallRecorded"]


def test_serial_and_plain_listeners_hear_the_same_events(fake_clock: FakeClock) -> None:
    """serial=True changes when a listener runs, never what it hears."""
    plain: list[BreakerEvent] = []
    serial: list[BreakerEvent] = []
    b = CircuitBreaker("serial-same", BreakerConfig(failure_threshold=1))
    b.add_listener(plain.append)
    b.add_listener(serial.append, serial=True)

    def fail() -> None:
        raise BoomError

    with pytest.raises(BoomError):
        b.call(fail)
    assert plain == serial
    assert CallRecorded in [type(e) for e in serial]


@pytest.mark.parametrize("option", ["serial", "before_call", "created"])
def test_listener_options_must_be_true_or_false(option: str) -> None:
    """add_listener(..., serial="yes") and friends raise ConfigError naming the option."""
    kwargs: dict[str, Any] = {option: "yes"}
    with pytest.raises(ConfigError) as caught:
        resilient.add_listener(print, **kwargs)
    assert caught.value.parameter == option
    if option != "created":
        with pytest.raises(ConfigError) as local:
            CircuitBreaker("options", BreakerConfig()).add_listener(print, **kwargs)
        assert local.value.parameter == option

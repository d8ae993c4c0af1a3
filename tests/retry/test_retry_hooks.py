"""@retry keeps the caller's error: failing hooks and predicates, bounded notes, refused types."""

from __future__ import annotations

import asyncio
import logging

import pytest
import tenacity

import resilient
from resilient._runtime import validate as _validate
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def broken_hook(*args: object) -> bool:
    """A user hook or predicate with a bug in it."""
    raise RuntimeError("hook bug")


class Flaky:
    """Fails ``failures`` times with a fresh ``ConnectionError``, then returns ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.errors: list[Exception] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            error = ConnectionError(f"down #{self.calls}")
            self.errors.append(error)
            raise error
        return "ok"


def name_of(fn: object) -> str:
    return f"{__name__}.{fn.__qualname__}"  # type: ignore[attr-defined]


# --- on_retry ----------------------------------------------------------------------------


def test_a_failing_on_retry_does_not_stop_the_retry(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """on_retry raising: the retry goes on, succeeds, and the failure is counted."""
    flaky = Flaky(2)

    @resilient.retry(initial_delay=0, on_retry=broken_hook)
    def call() -> str:
        return flaky()

    assert call() == "ok"
    assert flaky.calls == 3
    assert sink.counter("hook_errors_total", hook="on_retry") == 2


def test_a_failing_on_retry_leaves_the_callers_error_with_a_note(
    fake_clock: FakeClock, sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    """After the last attempt the caller gets the call's own last error, noted and logged."""
    flaky = Flaky(10)
    decorated = resilient.retry(attempts=3, initial_delay=0, on_retry=broken_hook)(flaky)
    with caplog.at_level(logging.WARNING), pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[-1]
    assert flaky.calls == 3
    notes = caught.value.__notes__
    assert any("after 3 attempts" in note for note in notes)
    assert any("on_retry" in note and "RuntimeError: hook bug" in note for note in notes)
    assert sink.counter("hook_errors_total", hook="on_retry") == 2
    assert [r for r in caplog.records if "hook bug" in r.getMessage()]  # logged once at least


async def test_async_failing_on_retry_keeps_the_callers_error(fake_clock: FakeClock) -> None:
    """The async loop also carries on past a failing on_retry and raises the call's error."""
    calls = 0

    @resilient.retry(attempts=3, initial_delay=0, on_retry=broken_hook)
    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(calls)

    with pytest.raises(ConnectionError) as caught:
        await failing()
    assert calls == 3
    assert caught.value.args == (3,)
    assert any("on_retry" in note for note in caught.value.__notes__)


# --- predicates and strategies ---------------------------------------------------------


def test_a_failing_on_predicate_means_do_not_retry(fake_clock: FakeClock, sink: MemorySink) -> None:
    """on=<predicate> raising: no retry, the call's error propagates with a note."""
    flaky = Flaky(5)
    decorated = resilient.retry(on=broken_hook, initial_delay=0)(flaky)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[0]
    assert flaky.calls == 1
    (note,) = caught.value.__notes__
    assert "the on of" in note
    assert "RuntimeError: hook bug" in note
    assert sink.counter("hook_errors_total", hook="on") == 1


async def test_async_failing_on_predicate_means_do_not_retry(fake_clock: FakeClock) -> None:
    """The async loop treats a raising on= predicate as "do not retry" too."""
    calls = 0

    @resilient.retry(on=broken_hook)
    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    with pytest.raises(ConnectionError) as caught:
        await failing()
    assert calls == 1
    assert "hook bug" in caught.value.__notes__[0]


def test_a_failing_tenacity_retry_strategy_means_do_not_retry(fake_clock: FakeClock) -> None:
    """on=tenacity.retry_if_exception(<raising>) keeps the call's error, unretried."""
    flaky = Flaky(5)
    decorated = resilient.retry(on=tenacity.retry_if_exception(broken_hook))(flaky)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[0]
    assert flaky.calls == 1


def test_a_failing_stop_strategy_ends_the_retries_with_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """stop=<raising callable> gives up with the call's error and a note."""
    flaky = Flaky(5)
    decorated = resilient.retry(stop=broken_hook, initial_delay=0)(flaky)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[0]
    notes = caught.value.__notes__
    assert any("the stop of" in note for note in notes)
    assert any("gave up" in note for note in notes)


def test_a_failing_wait_strategy_ends_the_retries_with_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """wait=<raising callable> gives up with the call's error and a note."""
    flaky = Flaky(5)
    decorated = resilient.retry(wait=broken_hook)(flaky)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[0]
    assert fake_clock.sleeps == []
    assert any("the wait of" in note for note in caught.value.__notes__)


def test_interrupts_from_hooks_still_propagate(fake_clock: FakeClock) -> None:
    """A hook raising KeyboardInterrupt is not swallowed."""

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resilient.retry(initial_delay=0, on_retry=interrupted)(Flaky(2))()


# --- bounded notes -----------------------------------------------------------------------


def test_one_error_raised_again_1000_times_keeps_bounded_notes(fake_clock: FakeClock) -> None:
    """A shared error instance through @retry 1,000 times carries one give-up note."""
    shared = ConnectionError("shared")

    @resilient.retry(attempts=2, initial_delay=0, on_retry=broken_hook)
    def failing() -> None:
        raise shared

    for _ in range(1000):
        with pytest.raises(ConnectionError):
            failing()
    assert len(shared.__notes__) == 2  # the give-up note and the on_retry note


def test_varying_give_up_reasons_still_keep_one_note(fake_clock: FakeClock) -> None:
    """Give-up notes whose text changes each time (deadline left) replace each other."""
    shared = ConnectionError("shared")
    step = [0.0]

    @resilient.timeout(10)
    @resilient.retry(attempts=5, initial_delay=4, jitter=0)
    def failing() -> None:
        fake_clock.advance(step[0])
        raise shared

    for rounds in range(200):
        step[0] = 0.001 * rounds
        with pytest.raises(ConnectionError):
            failing()
    assert len(shared.__notes__) == 1
    assert "deadline" in shared.__notes__[0]


def test_a_failing_predicate_on_a_shared_error_adds_one_note(fake_clock: FakeClock) -> None:
    """A raising on= predicate notes a shared error once, however often it passes."""
    shared = ConnectionError("shared")

    @resilient.retry(on=broken_hook)
    def failing() -> None:
        raise shared

    for _ in range(1000):
        with pytest.raises(ConnectionError):
            failing()
    assert len(shared.__notes__) == 1


def test_other_notes_on_the_error_are_kept(fake_clock: FakeClock) -> None:
    """Replacing its own older give-up note, @retry leaves the user's notes alone."""
    shared = ConnectionError("shared")
    shared.add_note("user note")

    @resilient.retry(attempts=2, initial_delay=0)
    def failing() -> None:
        raise shared

    for _ in range(3):
        with pytest.raises(ConnectionError):
            failing()
    assert shared.__notes__[0] == "user note"
    assert len(shared.__notes__) == 2


async def test_async_give_up_keeps_its_note(fake_clock: FakeClock) -> None:
    """The async loop gives up with the call's last error and the note listing the attempts."""
    errors = iter([ValueError("first"), KeyError("second"), ConnectionError("third")])

    @resilient.retry(attempts=3, initial_delay=0)
    async def failing() -> None:
        raise next(errors)

    with pytest.raises(ConnectionError, match="third") as caught:
        await failing()
    (note,) = caught.value.__notes__
    assert note == (
        f"resilient.retry gave up on {name_of(failing)} after 3 attempts: "
        "ValueError, KeyError, ConnectionError"
    )


async def test_async_deadline_give_up_keeps_its_note(fake_clock: FakeClock) -> None:
    """Inside an async timeout, the wait that does not fit ends with a deadline note."""

    @resilient.timeout(1.0)
    @resilient.retry(initial_delay=0.4, jitter=0, attempts=5)
    async def failing() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError) as caught:
        await failing()
    assert "deadline" in caught.value.__notes__[0]


# --- refused exception types -----------------------------------------------------------


@pytest.mark.parametrize(
    "on",
    [
        (ValueError, KeyboardInterrupt),
        (ValueError, SystemExit),
        (GeneratorExit,),
        (ConnectionError, asyncio.CancelledError),
        BaseException,
        (BaseException, ValueError),
        SystemExit,
    ],
)
def test_base_exception_only_types_are_refused_in_tuples_too(on: object) -> None:
    """on= naming an exit, interrupt or cancellation anywhere is a ConfigError."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.retry(on=on)  # type: ignore[arg-type]
    assert caught.value.parameter == "on"
    assert caught.value.value is on
    assert "never count" in caught.value.allowed


def test_exception_types_returns_a_tuple_of_exception_subclasses() -> None:
    """exception_types turns one type or a tuple into a tuple, unchanged."""
    assert _validate.exception_types("record", ValueError) == (ValueError,)
    assert _validate.exception_types("record", (KeyError, OSError)) == (KeyError, OSError)


@pytest.mark.parametrize(
    "value",
    [(), (ValueError, 3), "ValueError", int, (KeyboardInterrupt,), (ValueError, (KeyError,))],
)
def test_exception_types_refuses_everything_else(value: object) -> None:
    """exception_types refuses empty tuples, non-types and BaseException-only types."""
    with pytest.raises(resilient.ConfigError) as caught:
        _validate.exception_types("ignore", value)
    assert caught.value.parameter == "ignore"
    assert caught.value.value is value


def test_the_give_up_note_stays_short_however_many_attempts(fake_clock: FakeClock) -> None:
    """10,000 failed attempts of one kind are listed as one run, not 10,000 names."""
    calls = 0

    @resilient.retry(attempts=10_000, initial_delay=0)
    def failing() -> None:
        nonlocal calls
        calls += 1
        raise ValueError if calls == 1 else ConnectionError

    with pytest.raises(ConnectionError) as caught:
        failing()
    (note,) = caught.value.__notes__
    assert note.endswith("after 10000 attempts: ValueError, ConnectionError x9999")


def test_an_error_whose_notes_are_not_a_list_still_reaches_the_caller(
    fake_clock: FakeClock,
) -> None:
    """An error with a tuple ``__notes__`` (which takes no notes) is raised as it is."""
    odd = ConnectionError("odd")
    odd.__notes__ = ("set by hand",)  # type: ignore[assignment]

    @resilient.retry(attempts=2, initial_delay=0)
    def failing() -> None:
        raise odd

    with pytest.raises(ConnectionError) as caught:
        failing()
    assert caught.value is odd
    assert odd.__notes__ == ("set by hand",)


# --- failures that cannot be printed, varying messages, odd notes -----------------------


class UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str broke")


def unprintable_hook(*args: object) -> bool:
    """A user hook raising an exception whose message cannot be printed."""
    raise UnprintableError("hidden")


def test_an_on_predicate_raising_an_unprintable_error_keeps_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """on= raising an exception with a broken __str__: the call's own error reaches the caller."""
    flaky = Flaky(5)
    decorated = resilient.retry(on=unprintable_hook, initial_delay=0)(flaky)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[0]
    (note,) = caught.value.__notes__
    assert "UnprintableError('hidden')" in note


def test_an_on_retry_raising_an_unprintable_error_keeps_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """on_retry raising an exception with a broken __str__: the retries go on, the error arrives."""
    flaky = Flaky(10)
    decorated = resilient.retry(attempts=3, initial_delay=0, on_retry=unprintable_hook)(flaky)
    with pytest.raises(ConnectionError) as caught:
        decorated()
    assert caught.value is flaky.errors[-1]
    assert flaky.calls == 3
    assert any("on_retry" in note and "UnprintableError" in note for note in caught.value.__notes__)


async def test_async_on_retry_raising_an_unprintable_error_keeps_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """The async loop also survives an on_retry failure whose message cannot be printed."""

    @resilient.retry(attempts=2, initial_delay=0, on_retry=unprintable_hook)
    async def failing() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down"):
        await failing()


def test_an_on_predicate_with_varying_messages_keeps_one_note(fake_clock: FakeClock) -> None:
    """A shared error through a raising on= whose message changes each time keeps one note."""
    shared = ConnectionError("shared")
    count = 0

    def on(error: BaseException) -> bool:
        nonlocal count
        count += 1
        raise ValueError(f"boom {count}")

    @resilient.retry(attempts=2, initial_delay=0, on=on)
    def failing() -> None:
        raise shared

    for _ in range(1000):
        with pytest.raises(ConnectionError):
            failing()
    (note,) = shared.__notes__
    assert "boom 1000" in note


def test_an_on_retry_with_varying_messages_keeps_two_notes(fake_clock: FakeClock) -> None:
    """A shared error through a raising on_retry whose message changes keeps two notes."""
    shared = ConnectionError("shared")
    count = 0

    def on_retry(attempt: int, error: BaseException, delay: float) -> None:
        nonlocal count
        count += 1
        raise ValueError(f"boom {count}")

    @resilient.retry(attempts=2, initial_delay=0, on_retry=on_retry)
    def failing() -> None:
        raise shared

    for _ in range(1000):
        with pytest.raises(ConnectionError):
            failing()
    assert len(shared.__notes__) == 2  # the give-up note and the latest on_retry note
    assert "boom 1000" in shared.__notes__[-1]


@pytest.mark.parametrize("odd_note", [1, None, b"bytes"])
def test_a_note_that_is_not_a_string_does_not_break_the_give_up(
    fake_clock: FakeClock, odd_note: object
) -> None:
    """An error carrying a non-string note set by hand still reaches the caller, noted."""

    @resilient.retry(attempts=2, initial_delay=0)
    def failing() -> None:
        error = ConnectionError("real")
        error.__notes__ = [odd_note]  # type: ignore[list-item]
        raise error

    with pytest.raises(ConnectionError) as caught:
        failing()
    assert caught.value.args == ("real",)
    notes = caught.value.__notes__
    assert notes[0] == odd_note
    assert "gave up" in notes[1]

"""The shared machinery for failing user hooks: safe messages and bounded notes.

Every decorator reports a hook that raises through ``resilient._wrapping.hooks``; these tests pin
the helpers themselves and check, across decorators, that what they say about a failure
can always be printed and never piles up on an error object seen many times.
"""

from __future__ import annotations

import logging

import pytest

import resilient
from resilient import BreakerConfig, CircuitBreaker
from resilient._wrapping.hooks import (
    add_note_once,
    describe_failure,
    hook_failed,
    hook_note,
    hook_prefix,
)
from resilient.testing import FakeClock


class UnprintableError(Exception):
    """An exception whose message cannot be printed: ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str broke")


class UnrepresentableError(UnprintableError):
    """An exception whose ``str()`` and ``repr()`` both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("repr broke")


# --- describe_failure --------------------------------------------------------------------


def test_describe_failure_gives_the_type_and_message() -> None:
    """A printable failure is described as ``TypeName: message``."""
    assert describe_failure(ValueError("bad value")) == "ValueError: bad value"


def test_describe_failure_falls_back_to_repr_when_str_raises() -> None:
    """A failure whose ``__str__`` raises is described by its repr."""
    assert describe_failure(UnprintableError("x")) == "UnprintableError: UnprintableError('x')"


def test_describe_failure_falls_back_to_the_type_name_when_repr_raises_too() -> None:
    """A failure that can be neither str()-ed nor repr()-ed is described by its type name."""
    assert describe_failure(UnrepresentableError()) == "UnrepresentableError"


def test_hook_note_starts_with_its_prefix_and_survives_an_unprintable_failure() -> None:
    """hook_note begins with hook_prefix and can be built for any failure."""
    note = hook_note("on", "pkg.f", UnrepresentableError())
    assert note.startswith(hook_prefix("on", "pkg.f"))
    assert note == "resilient: the on of pkg.f raised UnrepresentableError (ignored)"


def test_hook_failed_with_an_unprintable_failure_notes_logs_and_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """hook_failed given an unprintable failure still notes the error and logs a line."""
    error = ConnectionError("down")
    with caplog.at_level(logging.WARNING, logger="resilient"):
        hook_failed("on", "pkg.f", UnprintableError("x"), error)
    assert error.__notes__ == [
        "resilient: the on of pkg.f raised UnprintableError: UnprintableError('x') (ignored)"
    ]
    assert any("UnprintableError('x')" in r.getMessage() for r in caplog.records)


# --- add_note_once -----------------------------------------------------------------------


def test_add_note_once_skips_an_identical_note() -> None:
    """Without replaces=, an identical note is not added twice."""
    error = ValueError()
    add_note_once(error, "same")
    add_note_once(error, "same")
    assert error.__notes__ == ["same"]


def test_add_note_once_replaces_notes_with_the_same_prefix() -> None:
    """With replaces=, the newest note takes the place of every older one with that prefix."""
    error = ValueError()
    error.add_note("user note")
    for n in range(1000):
        add_note_once(
            error, f"resilient: the on of f raised boom {n}", replaces="resilient: the on of f"
        )
    assert error.__notes__ == ["user note", "resilient: the on of f raised boom 999"]


def test_add_note_once_leaves_notes_that_are_not_strings_alone() -> None:
    """Notes set by hand that are not strings neither crash the helper nor get dropped."""
    error = ValueError()
    error.__notes__ = [1, None]
    add_note_once(error, "a", replaces="a")
    add_note_once(error, "b")
    assert error.__notes__ == [1, None, "a", "b"]


@pytest.mark.parametrize("notes", [("by hand",), None, "a string"])
def test_add_note_once_ignores_notes_that_are_not_a_list(notes: object) -> None:
    """An error whose ``__notes__`` is not a list takes no note and the helper does not raise."""
    error = ValueError()
    error.__notes__ = notes  # type: ignore[assignment]
    add_note_once(error, "note", replaces="note")
    add_note_once(error, "note")
    assert error.__notes__ == notes


# --- the same guarantees through each decorator ----------------------------------------


def test_breaker_record_predicate_with_varying_messages_keeps_one_note(
    fake_clock: FakeClock,
) -> None:
    """A shared error through a record= raising a new message each time keeps one note."""
    shared = ConnectionError("shared")
    count = 0

    def record(error: BaseException) -> bool:
        nonlocal count
        count += 1
        raise ValueError(f"boom {count}")

    b = CircuitBreaker("varying", BreakerConfig(failure_threshold=10_000, record=record))

    def failing() -> None:
        raise shared

    for _ in range(1000):
        with pytest.raises(ConnectionError):
            b.call(failing)
    assert shared.__notes__ == [hook_note("record= predicate", "varying", ValueError("boom 1000"))]


def test_breaker_record_predicate_raising_an_unprintable_error_keeps_the_callers_error(
    fake_clock: FakeClock,
) -> None:
    """record= raising an exception whose message cannot be printed: the call's error arrives."""

    def record(error: BaseException) -> bool:
        raise UnprintableError()

    b = CircuitBreaker("unprintable", BreakerConfig(record=record))
    original = ConnectionError("down")

    def failing() -> None:
        raise original

    with pytest.raises(ConnectionError) as caught:
        b.call(failing)
    assert caught.value is original
    assert "UnprintableError" in original.__notes__[0]


def test_all_decorators_share_the_note_format(fake_clock: FakeClock) -> None:
    """retry, fallback and breaker describe a failing hook with the same note builder."""
    errors: list[BaseException] = []

    def failing() -> None:
        error = ConnectionError("down")
        errors.append(error)
        raise error

    def predicate(error: BaseException) -> bool:
        raise KeyError("k")

    for decorator in (
        resilient.retry(on=predicate),
        resilient.fallback("x", on=predicate),
        resilient.breaker("shared-format", BreakerConfig(record=predicate)),
    ):
        with pytest.raises(ConnectionError):
            decorator(failing)()
    notes = [error.__notes__[0] for error in errors]
    assert all(note.endswith("raised KeyError: 'k' (ignored)") for note in notes)
    assert all(note.startswith("resilient: the ") for note in notes)

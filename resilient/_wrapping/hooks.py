"""User code called from inside a decorated call: hooks and predicates that may fail.

A hook or predicate that raises never replaces the error of the call. Its failure is
attached to that error as a note (one per hook and function, the latest: an error raised
again does not collect copies, whatever the failures say), logged once per window per
function through ``resilient._runtime.logs``, and counted as ``hook_errors_total``. Notes added by
resilient are bounded the same way, and what they say about a failure can always be
printed, even when the failure's own message cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..metrics._names import HOOK_ERRORS

__all__ = [
    "add_note_once",
    "describe_failure",
    "hook_failed",
    "hook_note",
    "hook_prefix",
    "safe_predicate",
]

T = TypeVar("T")


def describe_failure(failure: BaseException) -> str:
    """``"TypeName: message"`` for ``failure``, even when its message cannot be printed.

    A user's exception may have a ``__str__`` that raises; its ``repr`` is used instead,
    and when that raises too, its type name alone.
    """
    kind = type(failure).__name__
    try:
        return f"{kind}: {failure}"
    except Exception:
        pass
    try:
        return f"{kind}: {failure!r}"
    except Exception:
        return kind


def add_note_once(error: BaseException, note: str, *, replaces: str | None = None) -> None:
    """Add ``note`` to ``error``, dropping the notes it supersedes.

    Without ``replaces``, a note identical to ``note`` is superseded; with it, every note
    that starts with ``replaces`` (the stable part of what resilient says there, such as
    ``"resilient: the on_retry of f raised "``). One exception object can travel through
    the same decorator many times (a shared error instance, ``future.result()``) with a
    message that changes each time; its notes stay bounded by the distinct things said,
    the latest of each. Notes that are not strings (set by hand) are left alone, and an
    error whose ``__notes__`` is not a list, or cannot be read, takes no note and goes on.
    """
    try:
        notes = getattr(error, "__notes__", None)
        if notes is None:
            error.add_note(note)
            return
        if not isinstance(notes, list):
            return
        if replaces is None:
            if note not in notes:
                notes.append(note)  # what add_note does
            return
        notes[:] = [old for old in notes if not (isinstance(old, str) and old.startswith(replaces))]
        notes.append(note)
    except Exception:  # an odd error object: the note is lost, never the error
        pass


def hook_prefix(role: str, source: str) -> str:
    """The stable start of every :func:`hook_note` about the ``role`` hook of ``source``.

    Given as ``add_note_once(..., replaces=)``, it keeps one such note per error (the
    latest), whatever the hook's failures say.
    """
    return f"resilient: the {role} of {source} raised "


def hook_note(role: str, source: str, failure: BaseException) -> str:
    """The note saying that the user's ``role`` hook of ``source`` raised ``failure``."""
    return f"{hook_prefix(role, source)}{describe_failure(failure)} (ignored)"


def hook_failed(
    role: str, source: str, failure: BaseException, error: BaseException | None = None
) -> None:
    """Report that the user's ``role`` hook of ``source`` raised ``failure``.

    ``error`` is the call's own error, which keeps travelling to the caller; the hook's
    failure is attached to it as a note. ``KeyboardInterrupt``, ``SystemExit`` and
    cancellation are never passed here: callers let those propagate.
    """
    if error is not None:
        add_note_once(error, hook_note(role, source, failure), replaces=hook_prefix(role, source))
    from .._runtime.logs import digest
    from ..telemetry import count

    digest.report(f"{role} raised", source, describe_failure(failure))
    count(HOOK_ERRORS, (("name", source), ("hook", role)))


def safe_predicate(
    predicate: Callable[[T], object],
    value: T,
    role: str,
    source: str,
    *,
    default: bool,
    error: BaseException | None = None,
) -> bool:
    """``bool(predicate(value))``, or ``default`` when the predicate raises an ``Exception``."""
    try:
        return bool(predicate(value))
    except Exception as failure:
        hook_failed(role, source, failure, error)
        return default

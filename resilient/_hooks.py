"""User code called from inside a decorated call: hooks and predicates that may fail.

A hook or predicate that raises never replaces the error of the call. Its failure is
attached to that error as a note (once: an error raised again does not collect copies),
logged once per window per function through ``resilient._logs``, and counted as
``hook_errors_total``. Notes added by resilient are bounded the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from . import _config
from .metrics._names import HOOK_ERRORS

__all__ = ["add_note_once", "hook_failed", "safe_predicate"]

T = TypeVar("T")


def add_note_once(error: BaseException, note: str) -> None:
    """Add ``note`` to ``error`` unless an identical note is already there.

    One exception object can travel through the same decorator many times (a shared error
    instance, ``future.result()``); its notes stay bounded by the distinct things said.
    """
    notes = getattr(error, "__notes__", None)
    if notes is None:
        error.add_note(note)
    elif isinstance(notes, list) and note not in notes:
        notes.append(note)  # what add_note does; an odd __notes__ is left alone


def hook_failed(
    role: str, source: str, failure: BaseException, error: BaseException | None = None
) -> None:
    """Report that the user's ``role`` hook of ``source`` raised ``failure``.

    ``error`` is the call's own error, which keeps travelling to the caller; the hook's
    failure is attached to it as a note. ``KeyboardInterrupt``, ``SystemExit`` and
    cancellation are never passed here: callers let those propagate.
    """
    what = f"{type(failure).__name__}: {failure}"
    if error is not None:
        add_note_once(error, f"resilient: the {role} of {source} raised {what} (ignored)")
    from ._logs import digest
    from .telemetry import window

    digest.report(f"{role} raised", source, what)
    tags = (("name", source), ("hook", role))
    emit = _config.state.emit
    if emit is not None:
        emit.increment(HOOK_ERRORS, tags)
    else:
        window.increment(HOOK_ERRORS, 1, tags)


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

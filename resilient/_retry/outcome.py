"""What an attempt gave, as ``@retry``'s rules read it: an error, or a result to judge.

``RejectedResultError`` stands for a returned value that ``on_result`` (or a tenacity
``retry_if_result`` rule) asks to retry: it travels through the retry loop where an error
would, so hooks, events and statistics see it, and is never raised to the caller.
``wait_hint`` reads stamina's convention for an ``on=`` predicate's answer (a number or
``timedelta`` is the next wait). The tenacity helpers build the ``RetryCallState`` that
tenacity's own strategies read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .._runtime import config as _config
from .._runtime.validate import MAX_SECONDS
from ..exceptions import ResilienceError

__all__ = [
    "RETRY",
    "RejectedResultError",
    "TenacityRetry",
    "checks_results",
    "record_outcome",
    "tenacity_state",
    "wait_hint",
]


class RejectedResultError(ResilienceError):
    """An attempt returned ``result``, and ``on_result`` asked to try again.

    Never raised to the caller: hooks (``on_retry``, ``after``), events and
    ``resilient.stats`` see it in place of an error for the attempts that returned an
    unwanted value. When the attempts run out, the caller gets ``result`` itself.
    """

    def __init__(self, result: object) -> None:
        super().__init__(f"the result {_short(result)} was rejected by on_result")
        self.result = result


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"(a {type(value).__name__})"
    return text if len(text) <= 60 else f"{text[:57]}..."


RETRY = -1.0
"""``wait_hint``'s answer for "retry with the usual backoff"."""


def wait_hint(answer: object) -> float | None:
    """What an ``on=`` predicate's ``answer`` asks for: ``None`` (do not retry), ``RETRY``
    (retry, usual backoff) or a wait in seconds (stamina's backoff hint).

    ``True`` and other truthy values retry with the backoff; ``False``, ``None``, ``0``
    (or a zero ``timedelta``) and negative numbers do not retry; a positive ``int``,
    ``float`` or ``timedelta`` is the next wait. A wait that no clock can sleep (NaN,
    infinity, beyond ``1e9`` s) does not retry either.
    """
    if answer is True:
        return RETRY
    if isinstance(answer, bool):
        return None
    if isinstance(answer, timedelta):
        answer = answer.total_seconds()
    if isinstance(answer, int | float):
        seconds = float(answer)
        return seconds if 0.0 < seconds <= MAX_SECONDS else None
    return RETRY if answer else None


class TenacityRetry:
    """Marks a tenacity ``retry_*`` object, which reads a ``RetryCallState``.

    ``results`` says whether it may want to retry a returned value (a ``retry_if_result``
    or ``retry_if_not_result`` rule, alone or combined with ``|``/``&``): only then are
    results shown to it.
    """

    __slots__ = ("results", "strategy")

    def __init__(self, strategy: Callable[[Any], bool]) -> None:
        self.strategy: Callable[[Any], bool] = strategy
        self.results: bool = checks_results(strategy)


def tenacity_module() -> Any:
    """tenacity, when the program has imported it (``None`` otherwise)."""
    return sys.modules.get("tenacity")


def checks_results(strategy: object) -> bool:
    """Whether a tenacity retry strategy may look at a returned value.

    Rules about exceptions alone never want a result retried; a combination does when
    one of its parts may; an unknown strategy is asked, as tenacity would ask it.
    """
    import tenacity

    if isinstance(strategy, tenacity.retry_any | tenacity.retry_all):
        return any(checks_results(part) for part in strategy.retries)
    if isinstance(strategy, tenacity.retry_if_exception | tenacity.retry_if_exception_cause_type):
        return False
    return type(strategy).__name__ != "_retry_never"


def tenacity_state(call: Any, args: Any, kwargs: Any, start: float | None) -> Any:
    """A tenacity ``RetryCallState`` for one call; ``start`` is when its first attempt
    began (as tenacity's ``stop_after_delay`` counts), now when ``None``."""
    import tenacity

    state = tenacity.RetryCallState(retry_object=None, fn=call, args=args, kwargs=kwargs)  # type: ignore[arg-type]
    state.start_time = _config.state.clock.monotonic() if start is None else start
    state.upcoming_sleep = 0.0
    return state


def record_outcome(state: Any, attempt: int, outcome: BaseException) -> None:
    """Put attempt ``attempt``'s outcome on ``state``: the error, or the rejected result."""
    import tenacity

    state.attempt_number = attempt
    if isinstance(outcome, RejectedResultError):
        state.outcome = tenacity.Future.construct(attempt, outcome.result, False)
    else:
        state.outcome = tenacity.Future.construct(attempt, outcome, True)
    state.outcome_timestamp = _config.state.clock.monotonic()


def record_result(state: Any, attempt: int, result: object) -> None:
    """Put attempt ``attempt``'s returned ``result`` on ``state``."""
    import tenacity

    state.attempt_number = attempt
    state.outcome = tenacity.Future.construct(attempt, result, False)
    state.outcome_timestamp = _config.state.clock.monotonic()

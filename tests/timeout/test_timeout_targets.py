"""@timeout around callables that are not Python functions, and what describe() shows."""

from __future__ import annotations

import functools

import resilient


def test_the_signal_strategy_passes_arguments_to_a_builtin() -> None:
    """A builtin under the signal strategy gets its positional and keyword arguments."""
    guarded = resilient.timeout(5, strategy="signal")(sorted)
    assert guarded([3, 1, 2], reverse=True) == [3, 2, 1]


def test_the_signal_strategy_passes_arguments_to_a_partial() -> None:
    """A functools.partial under the signal strategy gets the call's arguments too."""
    guarded = resilient.timeout(5, strategy="signal")(functools.partial(int, base=2))
    assert guarded("101") == 5


def test_describe_shows_max_threads_only_when_it_was_changed() -> None:
    """describe() lists max_threads when it differs from the default of 32."""
    (custom,) = resilient.describe(resilient.timeout(5, max_threads=4)(lambda: None))
    (default,) = resilient.describe(resilient.timeout(5)(lambda: None))
    assert custom == {"layer": "timeout", "seconds": 5.0, "strategy": "thread", "max_threads": 4}
    assert default == {"layer": "timeout", "seconds": 5.0, "strategy": "thread"}


def test_describe_of_a_coroutine_leaves_out_the_sync_strategy() -> None:
    """An async call is cancelled by its event loop: describe() shows no strategy or
    max_threads for it, and still shows them for a sync call."""

    async def call() -> None: ...

    timed = resilient.timeout(5, strategy="signal", max_threads=4)
    (step,) = resilient.describe(timed(call))
    assert step == {"layer": "timeout", "seconds": 5.0}
    (sync_step,) = resilient.describe(timed(lambda: None))
    assert sync_step["strategy"] == "signal"
    assert sync_step["max_threads"] == 4

"""Hypothesis strategies shared by the breaker tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from resilient import BreakerConfig


class BoomError(Exception):
    """The failure the tests make calls raise."""


class IgnoredError(Exception):
    """An error every generated config ignores."""


SLOW = 5.0
"""``slow_call_duration`` of generated configs that detect slow calls."""

durations = st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.0, 16.0, 31.0, 61.0, 200.0])
"""Clock advances: a few round values hit every boundary in the configs below."""


def breaker_configs() -> st.SearchStrategy[BreakerConfig]:
    """Small configurations covering each trip rule, backoff, probing and slow calls."""
    return breaker_options().map(lambda options: BreakerConfig(**options))


@st.composite
def breaker_options(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for ``BreakerConfig``, as in ``breaker_configs`` (short to print)."""
    options: dict[str, Any] = {
        "reset_timeout": draw(st.sampled_from([1.0, 5.0, 30.0])),
        "half_open_max_calls": draw(st.integers(1, 3)),
        "success_threshold": draw(st.integers(1, 3)),
        "probe_timeout": draw(st.sampled_from([2.0, 10.0, 60.0])),
        "ignore": IgnoredError,
    }
    if draw(st.booleans()):
        options["reset_backoff"] = 2.0
        options["max_reset_timeout"] = draw(st.sampled_from([None, 40.0]))
    rule = draw(st.sampled_from(["consecutive", "count_rate", "time_rate"]))
    window = draw(st.integers(1, 6))
    if rule == "consecutive":
        options["failure_threshold"] = draw(st.integers(1, 4))
    else:
        options["failure_rate"] = draw(st.sampled_from([0.25, 0.5, 1.0]))
    if rule == "time_rate":
        options["window_duration"] = draw(st.sampled_from([10.0, 60.0]))
        options["minimum_calls"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        options["slow_call_duration"] = SLOW
        options["slow_call_rate"] = draw(st.sampled_from([0.5, 1.0]))
    if rule != "time_rate" and ("failure_rate" in options or "slow_call_duration" in options):
        options["window_size"] = window
        options["minimum_calls"] = draw(st.integers(1, window))
    return options

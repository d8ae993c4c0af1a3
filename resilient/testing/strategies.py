"""Hypothesis strategies for property tests of code that uses resilient.

``failure_sequences()`` scripts what a dependency does call by call, ``latencies()`` how
long it takes, and ``retry_configs()`` / ``breaker_configs()`` draw valid settings.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .._circuit.config import BreakerConfig
from .._retry.decorator import RetryConfig

__all__ = ["breaker_configs", "failure_sequences", "latencies", "retry_configs"]


def failure_sequences(
    *,
    errors: tuple[type[Exception], ...] = (ConnectionError, TimeoutError),
    max_size: int = 50,
) -> st.SearchStrategy[list[Exception | None]]:
    """Lists of outcomes, one per call: ``None`` for a success, else the error to raise."""
    error = st.sampled_from(errors).map(lambda kind: kind("scripted failure"))
    return st.lists(st.none() | error, max_size=max_size)


def latencies(*, max_seconds: float = 120.0) -> st.SearchStrategy[float]:
    """Call durations in seconds, biased towards the interesting small ones."""
    return st.one_of(
        st.floats(0, 1, allow_nan=False),
        st.floats(0, max_seconds, allow_nan=False),
        st.sampled_from([0.0, 5.0, 10.0, 30.0, 45.0, 60.0]),
    )


def retry_configs() -> st.SearchStrategy[RetryConfig]:
    """Valid ``RetryConfig`` values."""
    return st.builds(
        RetryConfig,
        attempts=st.integers(1, 10),
        initial_delay=st.floats(0, 5, allow_nan=False),
        max_delay=st.floats(0, 60, allow_nan=False),
        multiplier=st.floats(1, 4, allow_nan=False),
        jitter=st.floats(0, 1, allow_nan=False),
    )


def breaker_configs() -> st.SearchStrategy[BreakerConfig]:
    """Valid consecutive-failure ``BreakerConfig`` values."""
    options: dict[str, Any] = {
        "failure_threshold": st.integers(1, 10),
        "reset_timeout": st.floats(0.1, 120, allow_nan=False),
        "half_open_max_calls": st.integers(1, 5),
        "success_threshold": st.integers(1, 3),
    }
    return st.builds(BreakerConfig, **options)

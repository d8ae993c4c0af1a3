"""BreakerConfig: validated when built, with the seed's presets."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from resilient import BreakerConfig, CircuitBreaker, ConfigError, breaker
from resilient._circuit.config import MAX_NAME_LENGTH
from resilient.compat import CircuitBreakerRegistry, create_circuit_breaker
from resilient.presets import BACKEND_OPERATIONS


def test_defaults_are_the_seed_standard() -> None:
    """The default config is the seed's standard: 5 consecutive failures, 30 s open."""
    config = BreakerConfig()
    assert config == BreakerConfig.standard
    assert (config.failure_threshold, config.reset_timeout) == (5, 30.0)
    assert (config.half_open_max_calls, config.success_threshold) == (1, 1)
    assert config.failure_rate is None
    assert not config.windowed


@pytest.mark.parametrize(
    ("name", "threshold", "reset_timeout"),
    [
        ("standard", 5, 30.0),
        ("ai_operation", 3, 60.0),
        ("critical", 3, 15.0),
        ("database", 3, 30.0),
        ("external_api", 5, 30.0),
        ("file_processing", 5, 30.0),
    ],
)
def test_presets(name: str, threshold: int, reset_timeout: float) -> None:
    """Each preset has the seed's failure threshold and a reset timeout."""
    preset = BreakerConfig.get(name)
    assert preset is getattr(BreakerConfig, name)
    assert (preset.failure_threshold, preset.reset_timeout) == (threshold, reset_timeout)
    if name in BACKEND_OPERATIONS:
        assert threshold == BACKEND_OPERATIONS[name].failure_threshold


def test_unknown_preset_names_the_known_ones() -> None:
    """A typo in a preset name says which names exist."""
    with pytest.raises(ConfigError) as caught:
        BreakerConfig.get("ai-operation")
    assert caught.value.parameter == "config"
    assert "ai_operation" in caught.value.allowed


@pytest.mark.parametrize(
    ("options", "parameter", "allowed"),
    [
        ({"failure_threshold": 0}, "failure_threshold", "an integer >= 1"),
        ({"failure_threshold": 2.5}, "failure_threshold", "an integer >= 1"),
        ({"failure_threshold": True}, "failure_threshold", "an integer >= 1"),
        ({"failure_rate": 0}, "failure_rate", "a number within (0, 1]"),
        ({"failure_rate": 1.5}, "failure_rate", "a number within (0, 1]"),
        ({"reset_timeout": 0}, "reset_timeout", "a finite number of seconds > 0"),
        ({"reset_timeout": float("nan")}, "reset_timeout", "a finite number of seconds > 0"),
        ({"reset_timeout": "30"}, "reset_timeout", "a number of seconds or a timedelta"),
        ({"reset_backoff": 0.5}, "reset_backoff", "a finite number >= 1"),
        (
            {"reset_timeout": 30, "max_reset_timeout": 10},
            "max_reset_timeout",
            ">= reset_timeout (30s) or None",
        ),
        ({"half_open_max_calls": 0}, "half_open_max_calls", "an integer >= 1"),
        ({"success_threshold": -1}, "success_threshold", "an integer >= 1"),
        ({"probe_timeout": -1}, "probe_timeout", "a finite number of seconds > 0"),
        (
            {"window_size": 10},
            "window_size",
            "None unless failure_rate or slow_call_duration is set",
        ),
        (
            {"failure_rate": 0.5, "window_size": 10, "window_duration": 60},
            "window_duration",
            "None when window_size is given (choose one window)",
        ),
        (
            {"failure_rate": 0.5, "window_size": 10, "minimum_calls": 11},
            "minimum_calls",
            "<= window_size (10), or it never trips",
        ),
        ({"failure_rate": 0.5, "minimum_calls": 0}, "minimum_calls", "an integer >= 1"),
        (
            {"slow_call_rate": 0.5},
            "slow_call_rate",
            "None unless slow_call_duration is set",
        ),
        ({"slow_call_duration": 0}, "slow_call_duration", "a finite number of seconds > 0"),
        ({"record": "ValueError"}, "record", "an exception type, a non-empty tuple of them"),
        (
            {"ignore": KeyboardInterrupt},
            "ignore",
            "Exception subclasses (cancellation and exits never count)",
        ),
        ({"failure_result": 3}, "failure_result", "a callable or None"),
    ],
)
def test_invalid_values_name_parameter_value_and_what_is_allowed(
    options: dict[str, Any], parameter: str, allowed: str
) -> None:
    """A bad value fails when the config is built, naming the parameter, value and rule."""
    with pytest.raises(ConfigError) as caught:
        BreakerConfig(**options)
    error = caught.value
    assert error.parameter == parameter
    assert error.value is options[parameter]
    assert error.allowed.startswith(allowed)
    assert parameter in str(error)


def test_durations_accept_timedelta() -> None:
    """Durations are seconds or timedeltas, kept as float seconds."""
    config = BreakerConfig(
        reset_timeout=timedelta(minutes=1),
        max_reset_timeout=timedelta(minutes=5),
        probe_timeout=timedelta(seconds=90),
        slow_call_duration=timedelta(milliseconds=1500),
    )
    assert config.reset_timeout == 60.0
    assert config.max_reset_timeout == 300.0
    assert config.probe_timeout == 90.0
    assert config.slow_call_duration == 1.5
    assert config == BreakerConfig(
        reset_timeout=60, max_reset_timeout=300, probe_timeout=90, slow_call_duration=1.5
    )


def test_rate_mode_defaults() -> None:
    """Giving failure_rate switches to a 100-call window needing 10 calls."""
    config = BreakerConfig(failure_rate=0.5)
    assert config.windowed
    assert (config.window_size, config.window_duration, config.minimum_calls) == (100, None, 10)


def test_slow_calls_default_to_all_of_the_window() -> None:
    """slow_call_duration alone means: trip when every call in the window was slow."""
    config = BreakerConfig(slow_call_duration=2)
    assert config.slow_call_rate == 1.0
    assert config.windowed


def test_record_and_ignore_decide_what_counts() -> None:
    """record picks failures, ignore picks what counts as nothing, the rest succeed."""
    config = BreakerConfig(record=(OSError, ValueError), ignore=FileNotFoundError)
    assert config.counts(ConnectionError()) is True
    assert config.counts(ValueError()) is True
    assert config.counts(FileNotFoundError()) is None
    assert config.counts(KeyError()) is False
    predicate = BreakerConfig(record=lambda error: "503" in str(error))
    assert predicate.counts(RuntimeError("HTTP 503")) is True
    assert predicate.counts(RuntimeError("HTTP 404")) is False


def test_replace_validates_and_names_unknown_parameters() -> None:
    """replace() builds a validated copy; an unknown keyword is a ConfigError."""
    assert BreakerConfig.standard.replace(failure_threshold=3).failure_threshold == 3
    with pytest.raises(ConfigError) as caught:
        BreakerConfig.standard.replace(failureThreshold=3)
    assert caught.value.parameter == "failureThreshold"
    with pytest.raises(ConfigError):
        BreakerConfig.standard.replace(failure_threshold=0)


def test_configs_are_frozen_and_keyword_only() -> None:
    """A config cannot change after it is validated, nor be built positionally."""
    with pytest.raises(AttributeError):
        BreakerConfig.standard.failure_threshold = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        BreakerConfig(3)  # type: ignore[misc]


# --- breaker names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("file-\udcff", "UTF-8"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH} characters"),
        ("", "non-empty string"),
        (3, "non-empty string"),
        (["list"], "non-empty string"),
    ],
    ids=["lone-surrogate", "too-long", "empty", "int", "unhashable"],
)
def test_bad_breaker_names_are_refused_when_the_breaker_is_made(name: object, says: str) -> None:
    """Every way of making a breaker refuses a name no store can hold, naming ``name``."""
    makers: list[Callable[[], object]] = [
        lambda: CircuitBreaker(name),  # type: ignore[arg-type]
        lambda: breaker(name),  # type: ignore[arg-type]
        lambda: CircuitBreakerRegistry.instance.get_or_create(name),  # type: ignore[arg-type]
        lambda: create_circuit_breaker(lambda: 1, name=name),  # type: ignore[arg-type]
    ]
    for make in makers:
        with pytest.raises(ConfigError, match=re.escape(says)) as caught:
            make()
        assert caught.value.parameter == "name"
    assert len(CircuitBreakerRegistry.instance) == 0


def test_names_up_to_the_documented_length_and_any_unicode_are_accepted() -> None:
    """A 200-character name and a name with non-ASCII letters make working breakers."""
    longest = "n" * MAX_NAME_LENGTH
    assert MAX_NAME_LENGTH == 200
    assert breaker(longest)(lambda: 1)() == 1
    assert CircuitBreaker("café-☕").call(lambda: 2) == 2

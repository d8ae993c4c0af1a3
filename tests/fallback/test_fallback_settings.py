"""@fallback settings: the exact bounds accepted, what a refusal names, and describe()."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import resilient
from resilient._fallback import FallbackCache, fallback
from resilient.exceptions import ConfigError


def test_the_smallest_cache_bounds_are_accepted() -> None:
    """maxsize=1 and max_bytes=1 are the smallest bounds a FallbackCache takes."""
    assert FallbackCache(maxsize=1).maxsize == 1
    assert FallbackCache(max_bytes=1).max_bytes == 1


@pytest.mark.parametrize(
    ("kwargs", "parameter", "value", "allowed"),
    [
        ({"maxsize": 0}, "maxsize", 0, "an integer >= 1"),
        ({"ttl": 0}, "ttl", 0, "a finite number of seconds > 0"),
        ({"ttl": -1.0}, "ttl", -1.0, "a finite number of seconds > 0"),
        ({"max_bytes": 0}, "max_bytes", 0, "an integer >= 1"),
        ({"sizeof": len}, "sizeof", len, "a size function together with max_bytes="),
    ],
)
def test_a_refused_cache_setting_names_parameter_value_and_what_is_allowed(
    kwargs: dict[str, object], parameter: str, value: object, allowed: str
) -> None:
    """Each refused FallbackCache setting raises ConfigError(parameter, value, allowed)."""
    with pytest.raises(ConfigError) as caught:
        FallbackCache(**kwargs)  # type: ignore[arg-type]
    assert (caught.value.parameter, caught.value.value, caught.value.allowed) == (
        parameter,
        value,
        allowed,
    )


def test_an_async_fallback_on_a_def_names_the_values() -> None:
    """An async fallback callable on a sync function is refused naming values= and the list."""

    async def later() -> str:
        return "later"

    with pytest.raises(ConfigError) as caught:
        fallback("static", later)(lambda: "x")
    assert caught.value.parameter == "values"
    assert caught.value.value == ["static", later]
    assert caught.value.allowed == "sync callables for a def"


def test_describe_lists_every_setting() -> None:
    """describe() shows the fallbacks, the error types, when= and the cache settings."""

    def rejected(result: object) -> bool:
        return result is None

    cache = FallbackCache(maxsize=3)

    @fallback("static", on=(ConnectionError,), when=rejected, cache=cache)
    def fetch() -> str:
        return "real"

    assert list(resilient.describe(fetch)) == [
        {
            "layer": "fallback",
            "fallbacks": ["static"],
            "on": (ConnectionError,),
            "when": rejected,
            "cache": cache,
        }
    ]


def test_describe_shows_an_on_predicate_by_its_repr() -> None:
    """An on= predicate appears in describe() as its repr, not as a tuple of types."""

    def transient(error: BaseException) -> bool:
        return True

    guarded: Callable[[], str] = fallback("x", on=transient)(lambda: "y")
    (step,) = resilient.describe(guarded)
    assert step["on"] == repr(transient)


def test_nothing_to_fall_back_on_names_values() -> None:
    """fallback() with no value and no cache says values= needs a fallback or cache=True."""
    with pytest.raises(ConfigError) as caught:
        fallback()
    assert (caught.value.parameter, caught.value.value, caught.value.allowed) == (
        "values",
        (),
        "at least one fallback value, callable or cache=True",
    )


def test_a_bad_cache_names_what_is_allowed() -> None:
    """cache= other than True, False or a FallbackCache is refused saying which are allowed."""
    with pytest.raises(ConfigError) as caught:
        fallback("x", cache="yes")  # type: ignore[arg-type]
    assert (caught.value.parameter, caught.value.value, caught.value.allowed) == (
        "cache",
        "yes",
        "True, False or a FallbackCache",
    )


def test_interrupts_among_on_are_refused_naming_the_type() -> None:
    """on= naming an interrupt among other types is refused, naming on= and the interrupt."""
    with pytest.raises(ConfigError) as caught:
        fallback("x", on=(ValueError, KeyboardInterrupt))
    assert caught.value.parameter == "on"
    assert caught.value.value == (ValueError, KeyboardInterrupt)
    assert caught.value.allowed.startswith("Exception subclasses")
    assert "KeyboardInterrupt is not one" in caught.value.allowed


def test_a_fallback_without_a_signature_gets_only_the_arguments() -> None:
    """A callable whose signature cannot be read (a builtin) is not given error=."""
    assert fallback(max)(lambda *numbers: 1 / 0)(3, 5) == 5

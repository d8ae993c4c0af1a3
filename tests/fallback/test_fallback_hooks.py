"""@fallback with user predicates that raise, bounded notes, and what reaches the caller."""

from __future__ import annotations

import pytest

import resilient
from resilient._fallback import FallbackCache, fallback, last_fallback
from resilient.metrics import MemorySink


def broken(*args: object) -> bool:
    raise RuntimeError("predicate bug")


def failing(error: BaseException) -> object:
    def fail(*args: object, **kwargs: object) -> object:
        raise error

    return fail


def test_on_predicate_chooses_which_errors_get_a_fallback() -> None:
    """fallback(on=<predicate>) answers the errors it accepts and lets the others through."""
    wanted = fallback("x", on=lambda error: isinstance(error, ConnectionError))
    assert wanted(failing(ConnectionError()))() == "x"
    with pytest.raises(ValueError, match="bug"):
        wanted(failing(ValueError("bug")))()


async def test_on_predicate_chooses_which_errors_get_a_fallback_async() -> None:
    """The async wrapper consults an on= predicate the same way."""
    wanted = fallback("x", on=lambda error: "retryable" in str(error))

    @wanted
    async def retryable() -> str:
        raise ConnectionError("retryable")

    @wanted
    async def fatal() -> str:
        raise ConnectionError("fatal")

    assert await retryable() == "x"
    with pytest.raises(ConnectionError, match="fatal"):
        await fatal()


def test_on_predicate_that_raises_lets_the_calls_error_through(sink: MemorySink) -> None:
    """A raising on= predicate means no fallback: the call's own error arrives, with a note."""
    original = ConnectionError("down")
    guarded = fallback("x", on=broken)(failing(original))
    with pytest.raises(ConnectionError) as caught:
        guarded()
    assert caught.value is original
    assert any("on= predicate" in note and "predicate bug" in note for note in original.__notes__)
    assert sink.counter("hook_errors_total") == 1


async def test_on_predicate_that_raises_lets_the_calls_error_through_async(
    sink: MemorySink,
) -> None:
    """The async wrapper keeps the call's own error when its on= predicate raises."""
    original = ConnectionError("down")

    @fallback("x", on=broken)
    async def call() -> str:
        raise original

    with pytest.raises(ConnectionError) as caught:
        await call()
    assert caught.value is original
    assert any("predicate bug" in note for note in original.__notes__)
    assert sink.counter("hook_errors_total") == 1


def test_when_predicate_that_raises_returns_the_result(sink: MemorySink) -> None:
    """A raising when= predicate is taken as "keep the result": the caller gets it."""

    @fallback("fallback", when=broken)
    def answer() -> str:
        return "real"

    assert answer() == "real"
    assert last_fallback() is None
    assert sink.counter("hook_errors_total") == 1


async def test_when_predicate_that_raises_returns_the_result_async(sink: MemorySink) -> None:
    """The async wrapper returns the result when its when= predicate raises."""

    @fallback("fallback", when=broken)
    async def answer() -> str:
        return "real"

    assert await answer() == "real"
    assert sink.counter("hook_errors_total") == 1


def test_key_that_raises_returns_the_result_uncached(sink: MemorySink) -> None:
    """A raising key= leaves the call's result to the caller and caches nothing for it."""
    healthy = True

    @fallback("static", cache=True, key=lambda n: 1 // n)
    def lesson(n: int) -> str:
        if not healthy:
            raise ConnectionError
        return f"lesson {n}"

    assert lesson(0) == "lesson 0"  # key raises ZeroDivisionError
    assert sink.counter("hook_errors_total") == 1
    healthy = False
    assert lesson(0) == "static"  # nothing was cached, the cache lookup is skipped
    used = last_fallback()
    assert used is not None
    assert used.source == "fallback[0]"
    assert sink.counter("hook_errors_total") == 2


def test_key_that_raises_on_failure_keeps_the_calls_error(sink: MemorySink) -> None:
    """When only the cache could answer and key= raises, the call's error arrives noted."""
    original = ConnectionError("down")

    @fallback(cache=True, key=lambda n: 1 // n)
    def lesson(n: int) -> str:
        raise original

    with pytest.raises(ConnectionError) as caught:
        lesson(0)
    assert caught.value is original
    assert any("key= function" in note for note in original.__notes__)
    assert sink.counter("hook_errors_total") == 1


async def test_key_that_raises_returns_the_result_async(sink: MemorySink) -> None:
    """The async wrapper returns the result when key= raises."""

    @fallback("static", cache=True, key=lambda n: 1 // n)
    async def lesson(n: int) -> str:
        return f"lesson {n}"

    assert await lesson(0) == "lesson 0"
    assert sink.counter("hook_errors_total") == 1


def test_one_error_instance_through_fallback_gains_bounded_notes() -> None:
    """An error object raised again and again does not collect one note per pass."""
    shared = ConnectionError("shared")
    guarded = fallback(failing(KeyError("cold")))(failing(shared))
    for _ in range(1000):
        with pytest.raises(ConnectionError):
            guarded()
    assert len(shared.__notes__) == 1


def test_one_error_instance_through_a_raising_on_predicate_gains_one_note() -> None:
    """The note about a raising on= predicate is added once to an error seen many times."""
    shared = ConnectionError("shared")
    guarded = fallback("x", on=broken)(failing(shared))
    for _ in range(1000):
        with pytest.raises(ConnectionError):
            guarded()
    assert len(shared.__notes__) == 1


@pytest.mark.parametrize(
    "on",
    [
        (ValueError, KeyboardInterrupt),
        (ConnectionError, SystemExit),
        (KeyError, GeneratorExit),
        (BaseException,),
    ],
)
def test_base_exception_types_among_on_are_refused(on: tuple[type[BaseException], ...]) -> None:
    """A BaseException-only type anywhere in on= raises ConfigError naming on= at decoration."""
    with pytest.raises(resilient.ConfigError) as caught:
        fallback("x", on=on)
    assert caught.value.parameter == "on"
    assert caught.value.value == on


async def test_last_fallback_is_cleared_by_a_successful_async_call() -> None:
    """After an async call answered by a fallback, a successful one resets last_fallback()."""
    healthy = False

    @fallback("x")
    async def call() -> str:
        if not healthy:
            raise ConnectionError
        return "real"

    assert await call() == "x"
    assert last_fallback() is not None
    healthy = True
    assert await call() == "real"
    assert last_fallback() is None


def test_last_fallback_is_cleared_when_no_fallback_answers() -> None:
    """A call whose fallbacks all fail leaves last_fallback() None, not an older answer."""
    fallback("x")(failing(ConnectionError()))()
    assert last_fallback() is not None
    with pytest.raises(ConnectionError):
        fallback(failing(KeyError()))(failing(ConnectionError()))()
    assert last_fallback() is None


def test_rejected_result_with_every_fallback_failing_raises_the_fallbacks_error() -> None:
    """when= rejected the result and each fallback raised: the last fallback's error arrives."""
    last = LookupError("no default either")

    @fallback(failing(KeyError("cold cache")), failing(last), when=lambda r: r == "degraded")
    def answer() -> str:
        return "degraded"

    with pytest.raises(LookupError) as caught:
        answer()
    assert caught.value is last
    notes = "\n".join(caught.value.__notes__)
    assert "when= rejected the result" in notes
    assert "fallback[0]: KeyError" in notes
    assert last_fallback() is None


async def test_rejected_result_with_every_fallback_failing_raises_async() -> None:
    """The async wrapper raises the last fallback's error when when= rejected the result."""

    async def no_default() -> str:
        raise LookupError("no default")

    @fallback(no_default, when=lambda r: r == "degraded")
    async def answer() -> str:
        return "degraded"

    with pytest.raises(LookupError, match="no default"):
        await answer()


def test_rejected_result_with_only_an_empty_cache_is_returned() -> None:
    """when= rejected the result and nothing else could answer: the result itself arrives."""

    @fallback(cache=FallbackCache(), when=lambda r: r == "degraded")
    def answer(n: int) -> str:
        return "degraded"

    assert answer(1) == "degraded"
    assert last_fallback() is None


def test_on_types_are_checked_by_the_shared_validation() -> None:
    """fallback(on=...) names the offending BaseException-only type, as retry and breaker do."""
    with pytest.raises(resilient.ConfigError) as caught:
        fallback("x", on=(ValueError, KeyboardInterrupt))
    assert caught.value.parameter == "on"
    assert "KeyboardInterrupt is not one" in caught.value.allowed
    with pytest.raises(resilient.ConfigError) as alone:
        fallback("x", on=SystemExit)
    assert alone.value.parameter == "on"
    assert "SystemExit is not one" in alone.value.allowed


def test_a_non_type_among_on_types_is_named() -> None:
    """fallback(on=(ValueError, 3)) says that 3 is not an exception type."""
    with pytest.raises(resilient.ConfigError) as caught:
        fallback("x", on=(ValueError, 3))
    assert caught.value.parameter == "on"
    assert "3 is not an exception type" in caught.value.allowed


class UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str broke")


def unprintable(*args: object) -> bool:
    raise UnprintableError("hidden")


def test_on_predicate_raising_an_unprintable_error_lets_the_calls_error_through() -> None:
    """on= raising an exception with a broken __str__: the caller gets the call's own error."""
    original = ConnectionError("down")
    with pytest.raises(ConnectionError) as caught:
        fallback("x", on=unprintable)(failing(original))()
    assert caught.value is original
    assert "UnprintableError('hidden')" in original.__notes__[0]


async def test_on_predicate_raising_an_unprintable_error_async() -> None:
    """The async wrapper also keeps the call's error when on= raises an unprintable error."""
    original = ConnectionError("down")

    async def call() -> str:
        raise original

    with pytest.raises(ConnectionError) as caught:
        await fallback("x", on=unprintable)(call)()
    assert caught.value is original


def test_a_fallback_raising_an_unprintable_error_keeps_the_calls_error() -> None:
    """A failing fallback whose error cannot be printed: the call's error arrives, noted."""
    original = ConnectionError("down")
    with pytest.raises(ConnectionError) as caught:
        fallback(unprintable)(failing(original))()
    assert caught.value is original
    assert "fallback[0]: UnprintableError: UnprintableError('hidden')" in original.__notes__[0]


def test_a_raising_on_predicate_with_varying_messages_keeps_one_note() -> None:
    """A shared error through an on= raising a new message each time keeps one, the latest."""
    shared = ConnectionError("shared")
    count = 0

    def on(error: BaseException) -> bool:
        nonlocal count
        count += 1
        raise ValueError(f"boom {count}")

    guarded = fallback("x", on=on)(failing(shared))
    for _ in range(1000):
        with pytest.raises(ConnectionError):
            guarded()
    (note,) = shared.__notes__
    assert "boom 1000" in note


def test_a_failing_fallback_with_varying_messages_keeps_one_note() -> None:
    """A shared error whose fallback fails with a new message each time keeps one note."""
    shared = ConnectionError("shared")
    count = 0

    def answer() -> str:
        nonlocal count
        count += 1
        raise KeyError(f"cold {count}")

    guarded = fallback(answer)(failing(shared))
    for _ in range(1000):
        with pytest.raises(ConnectionError):
            guarded()
    (note,) = shared.__notes__
    assert "cold 1000" in note


def test_a_rejected_result_note_stays_one_on_a_shared_fallback_error() -> None:
    """when= rejecting results of varying types keeps one note on a shared fallback error."""
    shared = KeyError("cold")
    results = iter([1, "a", 2.0, None, (), [], {}] * 10)
    guarded = fallback(failing(shared), when=lambda result: True)(lambda: next(results))
    for _ in range(70):
        with pytest.raises(KeyError):
            guarded()
    (note,) = shared.__notes__
    assert "when= rejected the result (a dict)" in note


def test_failing_predicates_are_counted_under_the_function_and_their_role(
    sink: MemorySink,
) -> None:
    """hook_errors_total names the guarded function and "on= predicate" / "when= predicate"."""

    def fetch() -> str:
        raise ConnectionError

    def render() -> str:
        return "real"

    with pytest.raises(ConnectionError):
        fallback("x", on=broken)(fetch)()
    assert fallback("x", when=broken)(render)() == "real"
    prefix = f"{__name__}.test_failing_predicates_are_counted_under_the_function_and_their_role"
    assert sink.series()["hook_errors_total"] == [
        {"name": f"{prefix}.<locals>.fetch", "hook": "on= predicate"},
        {"name": f"{prefix}.<locals>.render", "hook": "when= predicate"},
    ]


@pytest.mark.parametrize("metrics", [False, True])
def test_keyword_arguments_reach_the_function(metrics: bool) -> None:
    """A guarded call passes keyword arguments through, with metrics on or off."""
    if metrics:
        resilient.configure(metrics=MemorySink())

    @fallback("x")
    def greet(name: str, *, punctuation: str) -> str:
        return f"hello {name}{punctuation}"

    assert greet("Ada", punctuation="!") == "hello Ada!"


def test_the_answer_names_the_guarded_function() -> None:
    """last_fallback().policy is the function's name, for errors and for rejected results."""

    down = ConnectionError("down")

    @fallback("x")
    def fetch() -> str:
        raise down

    @fallback("x", when=lambda r: r is None)
    def render() -> None:
        return None

    prefix = f"{__name__}.test_the_answer_names_the_guarded_function.<locals>"
    assert fetch() == "x"
    assert last_fallback() == resilient.FallbackUsed(f"{prefix}.fetch", "fallback[0]", down)
    assert render() == "x"
    assert last_fallback() == resilient.FallbackUsed(f"{prefix}.render", "fallback[0]", None)


def test_a_rejected_result_is_answered_from_the_cache() -> None:
    """when= rejecting a result lets the last good result for the same arguments answer."""
    results = iter(["good", None])

    @fallback(cache=True, when=lambda r: r is None)
    def lesson(n: int) -> str | None:
        return next(results)

    assert lesson(1) == "good"
    assert lesson(1) == "good"
    used = last_fallback()
    assert used is not None
    assert used.source == "cache"


def test_the_give_up_notes_name_the_function_and_the_rejected_result() -> None:
    """The notes on a failing fallback's error name the function and the rejected type."""

    @fallback(failing(LookupError("no default")), when=lambda r: r == "degraded")
    def answer() -> str:
        return "degraded"

    with pytest.raises(LookupError) as caught:
        answer()
    name = f"{__name__}.test_the_give_up_notes_name_the_function_and_the_rejected_result"
    assert caught.value.__notes__ == [
        f"resilient.fallback on {name}.<locals>.answer: when= rejected the result (a str) "
        "and no fallback answered; fallback[0] raised this"
    ]


async def test_async_fallbacks_get_the_error_and_the_next_one_answers() -> None:
    """Async: a fallback that raises is skipped and the next one gets the call's error."""
    seen: list[BaseException] = []

    async def cold() -> str:
        raise KeyError("cold")

    async def warm(*, error: BaseException) -> str:
        seen.append(error)
        return "warm"

    original = ConnectionError("down")

    @fallback(cold, warm)
    async def fetch() -> str:
        raise original

    assert await fetch() == "warm"
    assert seen == [original]


def test_a_failing_when_predicate_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A when= predicate that raises is logged once with the predicate's own error."""

    @fallback("x", when=broken)
    def render() -> str:
        return "real"

    assert render() == "real"
    assert "when= predicate raised: RuntimeError: predicate bug" in caplog.text

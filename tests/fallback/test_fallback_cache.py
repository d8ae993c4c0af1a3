"""@fallback's cache of last good results: calls it cannot key, keys of None, byte bounds."""

from __future__ import annotations

import logging
import sys
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import resilient
from resilient import ResilienceWarning
from resilient._fallback import FallbackCache, fallback, last_fallback
from resilient._wrapping.layer import Decorator
from resilient.metrics import MemorySink
from resilient.testing import FakeClock

MB = 1_000_000


class Service:
    """A function whose health the test switches, counting the calls that ran."""

    def __init__(self) -> None:
        self.healthy = True
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if not self.healthy:
            raise ConnectionError("down")
        return ("result", args, tuple(sorted(kwargs.items())) or None)


def test_unhashable_arguments_return_the_result_and_warn_once() -> None:
    """f([1, 2]) under cache=True returns its result, warns once (naming key=), caches nothing."""
    service = Service()
    guarded = fallback("static", cache=True)(service)
    with pytest.warns(ResilienceWarning, match="key=") as warned:
        first = guarded([1, 2])
    assert first == ("result", ([1, 2],), None)
    assert len(warned) == 1
    assert "not hashable" in str(warned[0].message)
    assert warned[0].filename == __file__  # points at the caller
    assert guarded([1, 2]) == first  # a second warning would raise: filterwarnings = error
    service.healthy = False
    assert guarded([1, 2]) == "static"  # nothing was cached; the other fallback answers
    assert service.calls == 3


def test_unhashable_arguments_on_failure_still_try_the_other_fallbacks() -> None:
    """A failing call with unhashable arguments skips the cache lookup and the fallbacks answer."""
    service = Service()
    service.healthy = False
    guarded = fallback("static", cache=True)(service)
    with pytest.warns(ResilienceWarning, match="key=") as warned:
        first = guarded({"a": "b"})
    assert first == "static"
    assert len(warned) == 1
    assert warned[0].filename == __file__
    assert guarded({"a": "b"}) == "static"  # warned once: filterwarnings = error
    used = last_fallback()
    assert used is not None
    assert used.source == "fallback[0]"


def test_unhashable_arguments_on_failure_with_only_a_cache_raise_the_calls_error() -> None:
    """With nothing but the cache, a failing unhashable call raises its own error."""
    service = Service()
    service.healthy = False
    guarded = fallback(cache=True)(service)
    with pytest.warns(ResilienceWarning), pytest.raises(ConnectionError, match="down"):
        guarded([1])


async def test_unhashable_arguments_return_the_result_async() -> None:
    """The async wrapper returns the result of an unhashable call and warns once."""

    @fallback("static", cache=True)
    async def by_filter(filters: dict[str, str]) -> str:
        return "ok"

    with pytest.warns(ResilienceWarning, match="key=") as warned:
        first = await by_filter({"a": "b"})
    assert first == "ok"
    assert len(warned) == 1
    assert await by_filter({"a": "c"}) == "ok"  # warned once: filterwarnings = error


def test_key_makes_unhashable_arguments_cacheable() -> None:
    """key= turns unhashable arguments into a key: the last good result answers a failure."""
    service = Service()
    guarded = fallback(cache=True, key=lambda filters: tuple(sorted(filters.items())))(service)
    first = guarded({"a": "b"})
    service.healthy = False
    assert guarded({"a": "b"}) == first


def test_a_key_of_none_never_caches_the_call() -> None:
    """key= returning None means "do not cache": one call's result never answers another's."""
    service = Service()
    guarded = fallback("static", cache=True, key=lambda n: None)(service)
    assert guarded(1) == ("result", (1,), None)
    service.healthy = False
    assert guarded(2) == "static"
    assert guarded(1) == "static"  # not even its own result was kept
    used = last_fallback()
    assert used is not None
    assert used.source == "fallback[0]"


def test_a_key_of_none_skips_only_the_calls_it_is_returned_for() -> None:
    """A key function may choose per call: keyed calls are cached, None-keyed ones are not."""
    service = Service()
    guarded = fallback("static", cache=True, key=lambda n: n if n > 0 else None)(service)
    guarded(1)
    guarded(-1)
    service.healthy = False
    assert guarded(1) == ("result", (1,), None)
    assert guarded(-1) == "static"


def test_an_unhashable_key_returns_the_result_and_warns_once() -> None:
    """key= returning an unhashable value: the result arrives, one warning names the key."""
    service = Service()
    guarded = fallback("static", cache=True, key=lambda n: [n])(service)
    with pytest.warns(ResilienceWarning, match="key= function returned an unhashable list"):
        first = guarded(1)
    assert first == ("result", (1,), None)
    assert guarded(2) == ("result", (2,), None)  # warned once: filterwarnings = error
    service.healthy = False
    assert guarded(1) == "static"


def test_the_warning_is_per_function() -> None:
    """Two functions with unhashable calls each get their own warning."""

    def first(items: list[int]) -> str:
        return "first"

    def second(items: list[int]) -> str:
        return "second"

    first = fallback("x", cache=True)(first)
    second = fallback("x", cache=True)(second)
    with pytest.warns(ResilienceWarning, match="first"):
        first([1])
    with pytest.warns(ResilienceWarning, match="second"):
        second([1])
    first([2])  # warned once: filterwarnings = error


def test_a_warning_made_an_error_on_the_failure_path_keeps_the_calls_error() -> None:
    """With warnings as errors, a failing call still raises its own error (the warning a note)."""
    original = ConnectionError("down")

    @fallback(cache=True)
    def call(items: list[int]) -> str:
        raise original

    with pytest.raises(ConnectionError) as caught:  # filterwarnings = error is on
        call([1])
    assert caught.value is original
    assert any("ResilienceWarning" in note for note in original.__notes__)


def entries(decorator: Decorator) -> Any:
    """The cachetools cache behind the one function ``decorator`` was applied to."""
    caches = decorator.layer.caches  # type: ignore[attr-defined]
    (cache,) = caches.values()
    return cache.entries


def cached_bytes(
    cache: FallbackCache, calls: int, make: Callable[[int], bytes]
) -> tuple[int, Decorator]:
    """Call a cached function ``calls`` times with fresh results; the bytes still traced."""
    decorator = fallback(cache=cache)
    guarded = decorator(make)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(calls):
            guarded(n)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return kept, decorator


def test_max_bytes_bounds_the_memory_the_cache_keeps() -> None:
    """200 results of 1 MB under max_bytes=10 MB keep at most 10 MB; the newest still answer."""
    kept, decorator = cached_bytes(
        FallbackCache(max_bytes=10 * MB), 200, lambda n: bytes([n % 256]) * MB
    )
    assert kept <= 10 * MB
    kept_entries = entries(decorator)
    assert 0 < kept_entries.currsize <= 10 * MB
    assert len(kept_entries) == 9  # nine results of 1 MB plus headers fit, a tenth does not


def test_max_bytes_keeps_the_most_recent_results(fake_clock: object) -> None:
    """Under a byte bound the least recently used results are dropped first."""
    healthy = True

    @fallback(cache=FallbackCache(max_bytes=3 * MB))
    def blob(n: int) -> bytes:
        if not healthy:
            raise ConnectionError
        return bytes([n]) * MB

    for n in range(5):
        blob(n)
    healthy = False
    assert blob(4) == bytes([4]) * MB
    assert blob(3) == bytes([3]) * MB
    with pytest.raises(ConnectionError):
        blob(0)


def test_a_result_larger_than_max_bytes_is_returned_not_kept() -> None:
    """A single result above the byte bound reaches the caller and is not cached."""
    service_healthy = True

    @fallback("static", cache=FallbackCache(max_bytes=MB))
    def blob() -> bytes:
        if not service_healthy:
            raise ConnectionError
        return b"x" * (2 * MB)

    assert len(blob()) == 2 * MB
    service_healthy = False
    assert blob() == "static"


def test_maxsize_still_bounds_the_count_under_max_bytes() -> None:
    """With max_bytes set, maxsize still caps how many results are kept."""
    decorator = fallback(cache=FallbackCache(maxsize=3, max_bytes=10 * MB))
    guarded = decorator(lambda n: n)
    for n in range(10):
        guarded(n)
    assert sorted(key[0] for key in entries(decorator)) == [7, 8, 9]


def test_sizeof_measures_results() -> None:
    """sizeof= replaces sys.getsizeof, so container results are measured as the user says."""
    measured: list[object] = []

    def deep(result: list[bytes]) -> int:
        measured.append(result)
        return sum(len(part) for part in result)

    decorator = fallback(cache=FallbackCache(max_bytes=3 * MB, sizeof=deep))
    guarded = decorator(lambda n: [b"x" * MB, b"y" * MB])
    for n in range(3):
        guarded(n)
    assert len(measured) == 3
    assert len(entries(decorator)) == 1  # two results of 2 MB do not fit in 3 MB
    assert sys.getsizeof([b"x" * MB, b"y" * MB]) < 100  # the default would have kept all three


@pytest.mark.parametrize("bad_size", [RuntimeError("boom"), -1, "big", 1.5])
def test_a_failing_sizeof_returns_the_result_uncached(bad_size: object) -> None:
    """A sizeof= that raises or returns no size: the result arrives, is not cached, is counted."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    def sizeof(result: object) -> object:
        if isinstance(bad_size, BaseException):
            raise bad_size
        return bad_size

    service = Service()
    guarded = fallback("static", cache=FallbackCache(max_bytes=MB, sizeof=sizeof))(service)  # type: ignore[arg-type]
    assert guarded(1) == ("result", (1,), None)
    assert sink.counter("hook_errors_total") == 1
    service.healthy = False
    assert guarded(1) == "static"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": -5}, "max_bytes"),
        ({"max_bytes": 1.5}, "max_bytes"),
        ({"max_bytes": "10MB"}, "max_bytes"),
        ({"max_bytes": True}, "max_bytes"),
        ({"max_bytes": MB, "sizeof": "len"}, "sizeof"),
        ({"sizeof": len}, "sizeof"),
    ],
)
def test_bad_byte_bounds_are_refused(kwargs: dict[str, object], parameter: str) -> None:
    """FallbackCache refuses bad max_bytes/sizeof values with ConfigError naming them."""
    with pytest.raises(resilient.ConfigError) as caught:
        FallbackCache(**kwargs)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


class BadHash:
    """An argument whose __hash__ fails with something other than TypeError."""

    def __hash__(self) -> int:
        raise ValueError("no hash today")


def test_an_argument_whose_hash_raises_returns_the_result() -> None:
    """Any error from hashing the arguments means "not cached": the result still arrives."""
    service = Service()
    argument = BadHash()
    guarded = fallback("static", cache=True)(service)
    with pytest.warns(ResilienceWarning, match="no hash today"):
        answer = guarded(argument)
    assert answer == ("result", (argument,), None)


def test_a_warning_made_an_error_on_the_success_path_keeps_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With warnings as errors, an uncacheable call that succeeds returns its result, logged."""
    calls: list[list[int]] = []

    @fallback("fallback", cache=True)
    def call(items: list[int]) -> str:
        calls.append(items)
        return "real"

    with caplog.at_level(logging.WARNING, logger="resilient"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert call([1, 2]) == "real"
        assert call([3]) == "real"
    assert calls == [[1, 2], [3]]
    (record,) = [r for r in caplog.records if "not hashable" in r.getMessage()]
    assert "ResilienceWarning" in record.getMessage()
    assert "key=" in record.getMessage()


async def test_a_warning_made_an_error_on_the_async_success_path_keeps_the_result() -> None:
    """The async wrapper also returns the result when the cache's warning is an error."""

    @fallback("fallback", cache=True)
    async def call(items: list[int]) -> str:
        return "real"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert await call([1, 2]) == "real"


def test_a_hash_error_that_cannot_be_printed_keeps_the_result() -> None:
    """An argument whose __hash__ raises an unprintable error: the result still arrives."""

    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str broke")

    class Odd:
        def __hash__(self) -> int:
            raise UnprintableError("no hash")

    @fallback(cache=True)
    def call(value: Odd) -> str:
        return "real"

    with pytest.warns(ResilienceWarning, match="UnprintableError"):
        assert call(Odd()) == "real"


def test_keyword_arguments_are_part_of_the_cache_key() -> None:
    """Calls that differ only in a keyword argument keep and get their own cached results."""
    service = Service()
    guarded = fallback(cache=True)(service)
    first = guarded(1, lesson="a")
    second = guarded(1, lesson="b")
    service.healthy = False
    assert guarded(1, lesson="a") == first
    assert guarded(1, lesson="b") == second
    with pytest.raises(ConnectionError):
        guarded(1, lesson="c")


def test_key_receives_the_keyword_arguments() -> None:
    """key= is called with the call's positional and keyword arguments."""
    service = Service()
    seen: list[tuple[object, ...]] = []

    def key(student: int, *, lesson: str) -> tuple[int, str]:
        seen.append((student, lesson))
        return (student, lesson)

    guarded = fallback(cache=True, key=key)(service)
    answer = guarded(7, lesson="fractions")
    service.healthy = False
    assert guarded(7, lesson="fractions") == answer
    assert seen == [(7, "fractions"), (7, "fractions")]


def test_a_raising_key_is_reported_with_its_function_and_role(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key= failure is counted under the function's name and "key= function" and logged."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    original = ConnectionError("down")

    def lesson(n: int) -> str:
        raise original

    guarded = fallback(cache=True, key=lambda n: 1 // n)(lesson)
    with pytest.raises(ConnectionError):
        guarded(0)
    name = f"{__name__}.test_a_raising_key_is_reported_with_its_function_and_role.<locals>.lesson"
    assert sink.series()["hook_errors_total"] == [{"name": name, "hook": "key= function"}]
    assert any("ZeroDivisionError" in note for note in original.__notes__)
    assert f"{name}: key= function raised: ZeroDivisionError" in caplog.text


def test_the_unhashable_warning_says_what_helps() -> None:
    """Unhashable arguments suggest key=; an unhashable key suggests making key= hashable."""
    helps = "; pass key=a function of the arguments returning a hashable key "
    with pytest.warns(ResilienceWarning, match=helps):
        fallback("static", cache=True)(Service())([1])
    with pytest.warns(ResilienceWarning, match="; make key= return a hashable key "):
        fallback("static", cache=True, key=lambda n: [n])(Service())(1)


def test_a_result_of_size_zero_is_kept() -> None:
    """A result that sizeof= measures as 0 bytes is a valid size and is cached."""
    service = Service()
    guarded = fallback(cache=FallbackCache(max_bytes=10, sizeof=lambda result: 0))(service)
    first = guarded(1)
    service.healthy = False
    assert guarded(1) == first


def test_a_sizeof_returning_no_size_is_logged_with_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sizeof= returning a negative number is logged as "sizeof= function" with the value."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    def blob() -> bytes:
        return b"x"

    fallback(cache=FallbackCache(max_bytes=10, sizeof=lambda result: -3))(blob)()
    name = f"{__name__}.test_a_sizeof_returning_no_size_is_logged_with_the_value.<locals>.blob"
    assert sink.series()["hook_errors_total"] == [{"name": name, "hook": "sizeof= function"}]
    assert f"{name}: sizeof= function raised: TypeError: returned -3, not a size" in caplog.text


def test_results_expire_after_ttl_under_a_byte_bound(fake_clock: FakeClock) -> None:
    """With max_bytes set, a cached result still expires ttl seconds after it was stored."""
    service = Service()
    guarded = fallback(cache=FallbackCache(ttl=10, max_bytes=MB))(service)
    first = guarded(1)
    service.healthy = False
    fake_clock.advance(9)
    assert guarded(1) == first
    fake_clock.advance(2)
    with pytest.raises(ConnectionError):
        guarded(1)


def test_results_cached_with_metrics_off_still_answer_with_metrics_on() -> None:
    """Turning metrics on does not hide the results cached before: one cache per function."""
    service = Service()
    guarded = fallback(cache=True)(service)
    first = guarded(1)
    resilient.configure(metrics=MemorySink())
    service.healthy = False
    assert guarded(1) == first


async def test_async_calls_with_keyword_arguments_are_cached() -> None:
    """Async: the result of a call with keyword arguments answers the same call later."""
    healthy = True

    @fallback(cache=True)
    async def lesson(n: int, *, part: str) -> str:
        if not healthy:
            raise ConnectionError
        return f"lesson {n}{part}"

    assert await lesson(1, part="a") == "lesson 1a"
    assert await lesson(1, part="b") == "lesson 1b"
    healthy = False
    assert await lesson(1, part="a") == "lesson 1a"
    used = last_fallback()
    assert used is not None
    assert used.source == "cache"


async def test_async_cache_answers_report_their_age(fake_clock: FakeClock) -> None:
    """Async: a cached answer reports how old it is in last_fallback().age."""
    healthy = True

    @fallback(cache=True)
    async def lesson(n: int) -> str:
        if not healthy:
            raise ConnectionError
        return f"lesson {n}"

    await lesson(1)
    fake_clock.advance(42)
    healthy = False
    assert await lesson(1) == "lesson 1"
    used = last_fallback()
    assert used is not None
    assert used.age == 42


async def test_async_key_failures_are_counted_under_the_function(sink: MemorySink) -> None:
    """Async: a raising key= is counted under the guarded function's name."""

    @fallback("static", cache=True, key=lambda n: 1 // n)
    async def lesson(n: int) -> str:
        return f"lesson {n}"

    assert await lesson(0) == "lesson 0"
    name = f"{__name__}.test_async_key_failures_are_counted_under_the_function.<locals>.lesson"
    assert {"name": name, "hook": "key= function"} in sink.series()["hook_errors_total"]


def test_a_warning_made_an_error_on_success_is_logged_under_the_function(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A successful call whose cache warning is an error returns its result, and the
    warning is logged as "fallback cache warning" of that function."""
    import warnings

    guarded = fallback("static", cache=True)(Service())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guarded([1]) == ("result", ([1],), None)
    assert "fallback cache warning: ResilienceWarning: fallback(cache=...) on" in caplog.text

"""Static checks that resilient's decorators keep the exact signature of what they wrap.

``mypy --strict`` reads this file (see ``[tool.mypy] files`` in pyproject.toml); nothing
here runs. Every check lives in a function that is never called, so importing the module is
harmless, and its name does not start with ``test_`` so pytest never collects it. Exact
signatures are compared with ``assert_type`` against mypy's extended ``Callable`` syntax
(``Arg``/``DefaultNamedArg`` keep parameter names and kinds); wrong calls carry a
``# type: ignore[code]`` that ``warn_unused_ignores`` (part of ``--strict``) turns into an
error should the wrong call ever type-check.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, assert_type

import resilient

if TYPE_CHECKING:
    from mypy_extensions import Arg, DefaultArg, DefaultNamedArg, VarArg

T = TypeVar("T")


# -- plain functions --------------------------------------------------------------------


@resilient.retry(attempts=3)
def fetch(x: int, *, y: str = "") -> list[int]:
    return [x]


@resilient.timeout(2.5)
def lookup(key: str, default: int = 0, /) -> int:
    return default


@resilient.retry(on=ValueError)
def variadic(*parts: str) -> str:
    return "".join(parts)


@resilient.retry()
def first(items: list[T]) -> T:
    return items[0]


def check_plain_functions() -> None:
    assert_type(fetch, Callable[[Arg(int, "x"), DefaultNamedArg(str, "y")], list[int]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(fetch(1), list[int])
    assert_type(fetch(1, y="a"), list[int])
    assert_type(fetch(x=1), list[int])
    fetch("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    fetch(1, "a")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    fetch(1, z="a")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    fetch(1, y=2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    fetch()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

    assert_type(lookup, Callable[[str, DefaultArg(int)], int])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(lookup("k"), int)
    assert_type(lookup("k", 3), int)
    lookup(key="k")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

    assert_type(variadic, Callable[[VarArg(str)], str])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(variadic("a", "b"), str)
    variadic("a", 1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    # A generic function stays generic.
    assert_type(first([1, 2]), int)
    assert_type(first(["a"]), str)
    first(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    result: str = fetch(1)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del result


# -- async functions --------------------------------------------------------------------


@resilient.retry(attempts=3)
async def afetch(x: int, *, y: str = "") -> list[int]:
    return [x]


@resilient.timeout("ai_operation")
async def ask(prompt: str) -> str:
    return prompt


@resilient.retry(resilient.RetryConfig.standard, on=ValueError)
async def parse(text: str) -> float:
    return float(text)


async def check_async_functions() -> None:
    assert_type(
        afetch,  # pyright: ignore[reportAssertTypeFailure]
        Callable[[Arg(int, "x"), DefaultNamedArg(str, "y")], Coroutine[Any, Any, list[int]]],  # pyright: ignore[reportInvalidTypeForm]
    )
    assert_type(await afetch(1, y="a"), list[int])
    assert_type(ask, Callable[[Arg(str, "prompt")], Coroutine[Any, Any, str]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(await ask("hi"), str)
    assert_type(await parse("1.5"), float)
    await afetch("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await ask(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    not_awaited: int = afetch(1)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del not_awaited


# -- presets and configurations ----------------------------------------------------------


@resilient.timeout("ai_operation")
def complete(prompt: str, *, temperature: float = 0.0) -> str:
    return prompt


@resilient.retry(resilient.RetryConfig.standard, on=ValueError)
def to_float(text: str) -> float:
    return float(text)


@resilient.retry("quick", on=(ValueError, KeyError), initial_delay=0)
def quick(text: str) -> float:
    return float(text)


def check_presets() -> None:
    assert_type(
        complete,  # pyright: ignore[reportAssertTypeFailure]
        Callable[[Arg(str, "prompt"), DefaultNamedArg(float, "temperature")], str],  # pyright: ignore[reportInvalidTypeForm]
    )
    assert_type(complete("hi", temperature=0.5), str)
    assert_type(to_float, Callable[[Arg(str, "text")], float])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(to_float("1"), float)
    assert_type(quick("1"), float)
    to_float(1.0)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- stacked decorators -----------------------------------------------------------------


@resilient.retry(attempts=2)
@resilient.timeout(1)
def stacked(x: int, *, y: str = "") -> bytes:
    return b""


@resilient.retry(resilient.RetryConfig.standard, on=TimeoutError)
@resilient.timeout("ai_operation")
async def astacked(x: int) -> bytes:
    return b""


async def check_stacked() -> None:
    assert_type(stacked, Callable[[Arg(int, "x"), DefaultNamedArg(str, "y")], bytes])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(stacked(1, y="a"), bytes)
    assert_type(astacked, Callable[[Arg(int, "x")], Coroutine[Any, Any, bytes]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(await astacked(1), bytes)
    stacked("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await astacked("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- methods ----------------------------------------------------------------------------


class Service:
    @resilient.retry(attempts=2)
    def method(self, x: int, *, y: str = "") -> str:
        return y

    @resilient.retry(attempts=2)
    async def amethod(self, x: int) -> str:
        return ""

    @resilient.retry(attempts=2)
    @classmethod
    def cm_above(cls, x: int) -> str:
        return ""

    @classmethod
    @resilient.retry(attempts=2)
    def cm_below(cls, x: int) -> str:
        return ""

    @resilient.timeout(1)
    @classmethod
    async def acm_above(cls, x: int) -> str:
        return ""

    @classmethod
    @resilient.timeout(1)
    async def acm_below(cls, x: int) -> str:
        return ""

    @resilient.retry(attempts=2)
    @staticmethod
    def sm_above(x: int) -> str:
        return ""

    @staticmethod
    @resilient.retry(attempts=2)
    def sm_below(x: int) -> str:
        return ""

    @resilient.retry(attempts=2)
    @resilient.timeout(1)
    @classmethod
    def cm_stacked(cls, x: int) -> str:
        return ""

    @resilient.retry(attempts=2)
    @staticmethod
    @resilient.timeout(1)
    def sm_stacked(x: int) -> str:
        return ""

    @classmethod
    def make(cls) -> Service:
        return cls()


class Child(Service):
    @resilient.retry(attempts=2)
    def method(self, x: int, *, y: str = "") -> str:
        return super().method(x, y=y)


async def check_methods(service: Service, child: Child) -> None:
    unbound = Callable[[Arg(Service, "self"), Arg(int, "x"), DefaultNamedArg(str, "y")], str]
    assert_type(Service.method, unbound)  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(service.method, Callable[[Arg(int, "x"), DefaultNamedArg(str, "y")], str])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(service.method(1, y="a"), str)
    assert_type(Service.method(service, 1), str)
    service.method("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Service.method(1, 2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    assert_type(await service.amethod(1), str)
    assert_type(await Service.amethod(service, 1), str)

    by_name = Callable[[Arg(int, "x")], str]
    for bound in (Service.cm_above, service.cm_above, Service.cm_below, service.cm_below):
        assert_type(bound, by_name)  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    for static in (Service.sm_above, service.sm_above, Service.sm_below, service.sm_below):
        assert_type(static, by_name)  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(Service.cm_above(1), str)
    assert_type(Service.cm_below(1), str)
    assert_type(await Service.acm_above(1), str)
    assert_type(await service.acm_below(1), str)
    assert_type(Service.sm_above(1), str)
    assert_type(service.sm_below(1), str)
    assert_type(Service.cm_stacked, by_name)  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(Service.sm_stacked, by_name)  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    Service.cm_above("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Service.cm_below("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Service.sm_above("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Service.sm_below("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Service.cm_stacked("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    assert_type(child.method(1, y="a"), str)
    overridden = Callable[[Arg(Child, "self"), Arg(int, "x"), DefaultNamedArg(str, "y")], str]
    assert_type(Child.method, overridden)  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]


# -- applied at runtime to other callables -----------------------------------------------


class Fetcher:
    def __call__(self, x: int) -> str:
        return ""


class AsyncFetcher:
    async def __call__(self, x: int) -> str:
        return ""


async def check_runtime_wrapping(service: Service) -> None:
    retry = resilient.retry(attempts=2, initial_delay=0)

    bound = retry(service.method)
    assert_type(bound, Callable[[Arg(int, "x"), DefaultNamedArg(str, "y")], str])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(retry(Fetcher())(1), str)
    assert_type(await retry(AsyncFetcher())(1), str)
    assert_type(retry(len)([1]), int)
    assert_type(resilient.timeout(1)(retry(fetch))(1), list[int])
    retry(Fetcher())("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    retry(42)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType, reportCallIssue]


def _as_class(cls: type[Service], x: int) -> str:
    return ""


def _as_static(x: int) -> str:
    return ""


def check_descriptor_objects() -> None:
    cm = resilient.retry(attempts=2)(classmethod(_as_class))
    assert_type(cm, classmethod[Service, [Arg(int, "x")], str])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    sm = resilient.retry(attempts=2)(staticmethod(_as_static))
    assert_type(sm, staticmethod[[Arg(int, "x")], str])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]

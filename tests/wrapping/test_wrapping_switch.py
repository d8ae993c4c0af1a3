"""The observation switch: the builder, not the layers, chooses the plain or observed chain.

Metrics off, a wrapped function runs its layers and nothing else; metrics on (or a
testing mode, or a chaos context manager), every call goes through the one observation
step first, including calls of functions decorated before the switch was turned.
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from garbage import collect

import resilient
from resilient._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer, layers_of
from resilient.chaos import inject_result
from resilient.testing import FakeClock

pytestmark = pytest.mark.usefixtures("fake_clock")


class Counting(Layer):
    """A layer written with no knowledge of observation: it counts the calls it passes on."""

    __slots__ = ("calls",)
    kind = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> dict[str, object]:
        return {"layer": self.kind}

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return call(*args, **kwargs)

        return counted

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await call(*args, **kwargs)

        return counted


def policy_of(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def test_a_layer_without_observation_code_is_timed_when_metrics_are_on(
    fake_clock: FakeClock,
) -> None:
    """A layer whose wrap_sync takes only (call, name) gets its calls timed under metrics."""
    layer = Counting()

    def work() -> int:
        fake_clock.advance(0.25)
        return 1

    counted = Decorator(layer)(work)
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    assert counted() == 1
    assert layer.calls == 1
    assert sink.timings("request_latency_ms", policy=policy_of(work)) == [250.0]


async def test_an_async_layer_without_observation_code_is_timed(fake_clock: FakeClock) -> None:
    """The async twin: an async layer unaware of observation is timed under metrics."""
    layer = Counting()

    async def work() -> int:
        fake_clock.advance(0.5)
        return 2

    counted = Decorator(layer)(work)
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    assert await counted() == 2
    assert layer.calls == 1
    assert sink.timings("request_latency_ms", policy=policy_of(work)) == [500.0]


def test_functions_decorated_before_configure_follow_each_switch() -> None:
    """Metrics turned on, off and on again: only the calls made while on are timed."""

    @resilient.retry(attempts=2)
    def work() -> int:
        return 1

    sink = resilient.metrics.MemorySink()
    work()
    resilient.configure(metrics=sink)
    work()
    resilient.configure(metrics=None)
    work()
    resilient.configure(metrics=sink)
    work()
    assert len(sink.timings("request_latency_ms", policy=policy_of(work))) == 2


def test_testing_disabled_and_chaos_reach_functions_decorated_before() -> None:
    """testing.disabled() skips the layers and a chaos block injects, on earlier functions."""
    layer = Counting()

    def work() -> str:
        return "real"

    counted = Decorator(layer)(work)
    with resilient.testing.disabled():
        assert counted() == "real"
    assert layer.calls == 0
    with inject_result("canned", enabled=True):
        assert counted() == "canned"
    assert layer.calls == 1
    assert counted() == "real"


def test_a_call_in_flight_finishes_in_the_chain_it_started_in() -> None:
    """Turning metrics on during a call leaves that call untimed and times the next one."""
    sink = resilient.metrics.MemorySink()
    switched: list[bool] = []

    @resilient.retry(attempts=2)
    def work() -> int:
        if not switched:
            switched.append(True)
            resilient.configure(metrics=sink)
        return 1

    assert work() == 1
    assert sink.timings("request_latency_ms", policy=policy_of(work)) == []
    assert work() == 1
    assert len(sink.timings("request_latency_ms", policy=policy_of(work))) == 1


def frames_between(decorate: Callable[[Callable[..., Any]], Callable[..., Any]]) -> list[str]:
    """The names of the frames between a caller and the body of a function ``decorate`` wraps."""
    seen: list[str] = []

    def target() -> None:
        frame = sys._getframe(1)
        while frame.f_code is not caller.__code__:
            seen.append(frame.f_code.co_name)
            frame = frame.f_back  # type: ignore[assignment]

    wrapped = decorate(target)

    def caller() -> None:
        wrapped()

    caller()  # a breaker's first call takes its slow path: look at the second
    seen.clear()
    caller()
    return seen


@pytest.mark.parametrize(
    "decorate",
    [
        pytest.param(lambda f: resilient.retry(attempts=2)(f), id="retry"),
        pytest.param(lambda f: resilient.breaker("switch-frames")(f), id="breaker"),
        pytest.param(lambda f: resilient.fallback(lambda *a: None)(f), id="fallback"),
        pytest.param(
            lambda f: resilient.fallback(lambda *a: None)(resilient.retry(attempts=2)(f)),
            id="fallback+retry",
        ),
    ],
)
def test_metrics_off_the_caller_reaches_the_target_through_the_layers_only(
    decorate: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> None:
    """With observation off, no frame but the layers' own stands between caller and target."""
    plain = frames_between(decorate)
    resilient.configure(metrics=resilient.metrics.MemorySink())
    observed = frames_between(decorate)
    resilient.configure(metrics=None)
    assert frames_between(decorate) == plain
    assert len(plain) == len(layers_of(decorate(lambda: None)))  # one frame per layer
    assert observed == [*plain, "observed", "jump"]  # on: the hand-over, then the step


class Service:
    @resilient.retry(attempts=2)
    def sync(self, x: int) -> tuple[Service, int]:
        return self, x

    @resilient.retry(attempts=2)
    async def run(self, x: int) -> tuple[Service, int]:
        return self, x


async def test_a_method_keeps_identity_binding_and_kind_through_switches() -> None:
    """The function object stays the same, binds as a method and stays a coroutine function."""
    before_sync, before_async = Service.__dict__["sync"], Service.__dict__["run"]
    service = Service()
    for metrics in (resilient.metrics.MemorySink(), None, resilient.metrics.MemorySink()):
        resilient.configure(metrics=metrics)
        assert Service.__dict__["sync"] is before_sync
        assert Service.__dict__["run"] is before_async
        assert service.sync(3) == (service, 3)
        assert await service.run(4) == (service, 4)
        assert inspect.iscoroutinefunction(Service.run)
        assert not inspect.iscoroutinefunction(Service.sync)
        assert inspect.signature(Service.sync) == inspect.signature(Service.sync.__wrapped__)


def test_the_observed_chain_lives_as_long_as_the_function() -> None:
    """A function whose builder's locals are gone still reaches its observed chain."""

    def make() -> Callable[[], int]:
        return resilient.retry(attempts=2)(lambda: 7)

    work = make()
    collect()
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    assert work() == 7
    assert len(sink.timings("request_latency_ms")) == 1


@pytest.mark.parametrize("drop_while_observed", [True, False])
def test_a_recursive_decorated_closure_is_collected(drop_while_observed: bool) -> None:
    """A decorated closure that calls itself is freed once dropped, observed or not."""

    def make() -> Callable[[int], int]:
        @resilient.retry(attempts=2)
        def countdown(n: int) -> int:
            return n if n == 0 else countdown(n - 1)

        return countdown

    work = make()
    resilient.configure(metrics=resilient.metrics.MemorySink())
    assert work(3) == 0
    if not drop_while_observed:
        resilient.configure(metrics=None)
        assert work(3) == 0
    gone = weakref.ref(work)
    del work
    collect()
    assert gone() is None


def test_a_bound_callable_object_is_observed_per_call() -> None:
    """A callable descriptor bound at call time gets its freshly built chain observed."""

    class Method:
        def __get__(self, instance: object, owner: type | None = None) -> Callable[[], str]:
            return lambda: f"bound to {type(instance).__name__}"

        def __call__(self) -> str:
            return "unbound"

    class Holder:
        method = resilient.retry(attempts=2)(Method())

    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    assert Holder().method() == "bound to Holder"
    resilient.configure(metrics=None)
    assert Holder().method() == "bound to Holder"
    assert len(sink.timings("request_latency_ms")) == 1


class Partial(Counting):
    """A layer that returns a callable object rather than a function."""

    __slots__ = ()

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        return functools.partial(super().wrap_sync(call, name))


def test_a_layer_returning_a_callable_object_is_switched_too() -> None:
    """A layer's callable object (not a function) still runs plain, then observed."""
    layer = Partial()
    work = Decorator(layer)(lambda: 5)
    assert work() == 5
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    assert work() == 5
    assert layer.calls == 2
    assert len(sink.timings("request_latency_ms")) == 1


def test_a_resilient_function_given_another_ones_attributes_by_wraps_is_observed() -> None:
    """functools.wraps copying a resilient function's attributes onto another keeps both working."""

    def logged(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)  # copies fn's attributes over the timeout's own
        @resilient.timeout(5)
        def inner(*args: Any, **kwargs: Any) -> int:
            return fn(*args, **kwargs)

        return inner

    @logged
    @resilient.retry(attempts=2)
    def fetch(x: int) -> int:
        return x * 2

    collect()
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    assert fetch(2) == 4
    assert len(sink.timings("request_latency_ms")) == 2  # the timeout's and the retry's


def test_a_function_whose_attributes_were_cleared_runs_its_plain_chain() -> None:
    """With its observed chain gone, a wrapped function still runs its layers, unobserved."""
    layer = Counting()
    work = Decorator(layer)(lambda: 3)
    work.__dict__.clear()
    collect()
    resilient.configure(metrics=resilient.metrics.MemorySink())
    assert work() == 3
    assert layer.calls == 1


def test_a_function_copied_over_by_wraps_and_recursive_is_collected() -> None:
    """A recursive decorated closure given another's attributes by wraps is freed once dropped."""

    def make() -> Callable[[int], int]:
        @functools.wraps(make)
        @resilient.retry(attempts=2)
        def countdown(n: int) -> int:
            return n if n == 0 else countdown(n - 1)

        return countdown

    work = make()
    resilient.configure(metrics=resilient.metrics.MemorySink())
    assert work(3) == 0
    gone = weakref.ref(work)
    del work
    collect()
    assert gone() is None


def test_a_switch_made_during_a_switch_pass_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics turned back on (by a finalizer) in the middle of turning them off stay on."""
    from resilient._wrapping import switch

    functions = [resilient.retry(attempts=2)(lambda i=i: i) for i in range(5)]
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    current = switch._Codes.current
    passes = 0

    def interrupted(codes: Any, active: bool) -> Any:
        nonlocal passes
        passes += 1
        if passes == 2:  # as a finalizer run by the collector part-way through the pass
            resilient.configure(metrics=sink)
        return current(codes, active)

    monkeypatch.setattr(switch._Codes, "current", interrupted)
    resilient.configure(metrics=None)
    monkeypatch.undo()
    assert all(function() == i for i, function in enumerate(functions))
    assert len(sink.timings("request_latency_ms")) == len(functions)


def test_concurrent_configure_leaves_the_code_the_last_one_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """configure(metrics=None) paused before it records the switch, then metrics on: on wins."""
    import threading

    from resilient._runtime import config

    @resilient.retry(attempts=2)
    def work() -> int:
        return 1

    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)
    refresh = config._State.refresh.__code__
    lines, start = inspect.getsourcelines(refresh)
    store = start + next(i for i, text in enumerate(lines) if "self.active = active" in text)
    paused, go = threading.Event(), threading.Event()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not refresh or go.is_set():
            return None

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == store and not go.is_set():
                paused.set()
                go.wait()
            return local

        return local

    def turn_off() -> None:
        sys.settrace(tracer)
        try:
            resilient.configure(metrics=None)
        finally:
            sys.settrace(None)

    class LettingGo:
        """The lock, releasing the paused thread as this thread starts waiting for it."""

        def __init__(self, lock: Any) -> None:
            self.lock = lock

        def __enter__(self) -> None:
            go.set()
            self.lock.__enter__()

        def __exit__(self, *exc: object) -> None:
            self.lock.__exit__(*exc)

    thread = threading.Thread(target=turn_off)
    thread.start()
    paused.wait()
    monkeypatch.setattr(config, "lock", LettingGo(getattr(config, "lock", None)), raising=False)
    try:
        resilient.configure(metrics=sink)
    finally:
        go.set()
        thread.join()
        monkeypatch.undo()
    assert resilient.configuration().metrics is sink
    assert work() == 1
    assert len(sink.timings("request_latency_ms")) == 1

"""The pytest plugin (entry point ``pytest11``): fixtures and markers for resilient.

Fixtures: ``fake_clock`` (virtual time for every decorator; async tests also get an
event loop whose time jumps ahead whenever every task is waiting), ``resilient_metrics``
(a memory sink with assertions), ``resilient_store`` (a fresh store), ``breakers``
(open, close and inspect breakers by name). Markers: ``resilient_instant(attempts=2)``
and ``resilient_disabled``. Every test starts and ends with fresh global state.

It lives outside the ``resilient`` package and imports nothing of it until a test needs
it, so it adds next to nothing to a test session's start-up, and a session whose tests
never import resilient never pays for it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from resilient.metrics import MemorySink
    from resilient.testing import FakeClock


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "resilient_instant(attempts=2): retries without waits, attempts capped"
    )
    config.addinivalue_line("markers", "resilient_disabled: resilient decorators pass through")


@pytest.fixture(autouse=True)
def _resilient_fresh_state(request: pytest.FixtureRequest) -> Iterator[None]:
    marked = any(
        request.node.get_closest_marker(name)
        for name in ("resilient_instant", "resilient_disabled")
    )
    if "resilient" not in sys.modules and not marked:
        yield  # nothing of resilient loaded yet: no state to reset
        if "resilient" in sys.modules:
            sys.modules["resilient"].testing.reset()
        return
    from resilient import testing

    testing.reset()
    with ExitStack() as modes:
        instant = request.node.get_closest_marker("resilient_instant")
        if instant is not None:
            modes.enter_context(testing.instant(*instant.args, **instant.kwargs))
        if request.node.get_closest_marker("resilient_disabled") is not None:
            modes.enter_context(testing.disabled())
        yield
    testing.reset()


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """A ``FakeClock`` driving every decorator, and asyncio's time in this thread.

    A sync ``@timeout`` call that spends 0.5 s of real time without using the CPU is
    taken as hanging: the clock jumps to its deadline (``FakeClock.autojump``). The event
    loop waits as long for work in its executor threads or on sockets before it jumps.
    """
    from resilient.testing import FakeClock, use_clock

    clock = FakeClock(autojump=_AUTOJUMP)
    with use_clock(clock), _virtual_loop_time(clock):
        yield clock


_AUTOJUMP = 0.5  # real seconds


class _Jump:
    """Patches asyncio so that, in one thread, the loop reads the fake clock and, when it
    would block waiting for a timer, advances the clock instead: at once when nothing but
    a timer can wake it, else after ``clock.autojump`` real seconds with nothing ready
    (work in executor threads, such as ``asyncio.to_thread``, or sockets to watch)."""

    def __init__(self, clock: FakeClock) -> None:
        import asyncio.base_events
        import selectors

        self.clock = clock
        self.owner = threading.get_ident()
        self.loop_class = asyncio.base_events.BaseEventLoop
        self.selector_class: Any = selectors.DefaultSelector
        self.real_time: Any = self.loop_class.time
        self.real_select = self.selector_class.select
        self.real_run_in_executor = self.loop_class.run_in_executor
        self.real_shutdown = self.loop_class.shutdown_default_executor
        self.in_executor = 0  # executor calls of this thread's loop not finished yet

    def __enter__(self) -> None:
        jump = self

        def time(loop: Any) -> float:
            if threading.get_ident() == jump.owner:
                return jump.clock.monotonic()
            real: float = jump.real_time(loop)
            return real

        def select(selector: Any, timeout: float | None = None) -> Any:
            if threading.get_ident() != jump.owner or timeout is None or timeout <= 0:
                return jump.real_select(selector, timeout)
            wait = 0.0
            if jump.in_executor or len(selector.get_map()) > 1:  # more than the loop's wake-up
                patience = jump.clock.autojump
                wait = timeout if patience is None else min(timeout, patience)
            ready = jump.real_select(selector, wait)
            if not ready:
                jump.clock.advance(timeout)  # every task waits on a timer: jump to it
            return ready

        def finished(future: Any) -> None:
            jump.in_executor -= 1

        def run_in_executor(loop: Any, executor: Any, func: Any, *args: Any) -> Any:
            future = jump.real_run_in_executor(loop, executor, func, *args)
            if threading.get_ident() == jump.owner:
                jump.in_executor += 1
                future.add_done_callback(finished)
            return future

        async def shutdown_default_executor(loop: Any, *args: Any, **kwargs: Any) -> None:
            # The executor's threads are joined by a thread that wakes the loop when done:
            # work the loop waits for, like a call in the executor.
            if threading.get_ident() != jump.owner:
                return await jump.real_shutdown(loop, *args, **kwargs)
            jump.in_executor += 1
            try:
                return await jump.real_shutdown(loop, *args, **kwargs)
            finally:
                jump.in_executor -= 1

        self.loop_class.time = time  # type: ignore[method-assign, assignment]
        self.selector_class.select = select
        self.loop_class.run_in_executor = run_in_executor  # type: ignore[method-assign, assignment]
        self.loop_class.shutdown_default_executor = shutdown_default_executor  # type: ignore[method-assign, assignment]

    def __exit__(self, *exc: object) -> None:
        self.loop_class.time = self.real_time  # type: ignore[method-assign]
        self.selector_class.select = self.real_select
        self.loop_class.run_in_executor = self.real_run_in_executor  # type: ignore[method-assign]
        self.loop_class.shutdown_default_executor = self.real_shutdown  # type: ignore[method-assign]


def _virtual_loop_time(clock: FakeClock) -> _Jump:
    return _Jump(clock)


class MetricsRecorder:
    """A ``MemorySink`` installed for one test, with assertions that say what they saw."""

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    def assert_counter(self, name: str, expected: float, **tags: str) -> None:
        found = self.sink.counter(name, **tags)
        assert found == expected, f"{name}{tags or ''} is {found}, expected {expected}"

    def assert_gauge(self, name: str, expected: float, **tags: str) -> None:
        found = self.sink.gauge_value(name, **tags)
        assert found == expected, f"gauge {name}{tags or ''} is {found}, expected {expected}"

    def assert_timings(self, name: str, count: int, **tags: str) -> None:
        found = len(self.sink.timings(name, **tags))
        assert found == count, f"{name}{tags or ''} has {found} timings, expected {count}"


@pytest.fixture
def resilient_metrics() -> MetricsRecorder:
    """A memory sink configured for this test: ``assert_counter("retry_attempts_total", 2)``."""
    import resilient
    from resilient.metrics import MemorySink

    sink = MemorySink()
    resilient.configure(metrics=sink)
    return MetricsRecorder(sink)


@pytest.fixture
def resilient_store() -> Any:
    """A fresh ``MemoryStore`` configured as the default for this test."""
    import resilient
    from resilient.stores import MemoryStore

    store = MemoryStore()
    resilient.configure(store=store)
    return store


class Breakers:
    """Open, close and inspect circuit breakers by name."""

    def __getitem__(self, name: str) -> Any:
        from resilient.compat import CircuitBreakerRegistry

        return CircuitBreakerRegistry.instance.get_or_create(name)

    def open(self, name: str) -> None:
        self[name].force_open()

    def close(self, name: str) -> None:
        self[name].reset()

    def state(self, name: str) -> str:
        return str(self[name].mode.name.lower())

    def names(self) -> list[str]:
        from resilient.compat import CircuitBreakerRegistry

        return CircuitBreakerRegistry.instance.names()


@pytest.fixture
def breakers() -> Breakers:
    """Control breakers by name: ``breakers.open("ai")``, ``breakers.state("ai")``."""
    return Breakers()

"""The pytest plugin (entry point ``pytest11``): fixtures and markers for resilient.

Fixtures: ``fake_clock`` (virtual time for every decorator; an async test that uses it
runs on its own event loop, whose time jumps ahead whenever every task is waiting, while
every other loop in the process keeps real time), ``resilient_metrics``
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
import types
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from resilient.metrics import MemorySink
    from resilient.testing import FakeClock, VirtualTimeLoop


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "resilient_instant(attempts=2): retries without waits, attempts capped"
    )
    config.addinivalue_line("markers", "resilient_disabled: resilient decorators pass through")
    factories = getattr(config.hook, "pytest_asyncio_loop_factories", None)
    if config.pluginmanager.has_plugin("asyncio") and getattr(factories, "spec", None) is None:
        _provide_event_loop_policy(config)


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
    """A ``FakeClock`` driving every decorator and, in an async test, the test's event loop.

    A sync ``@timeout`` call that spends 0.5 s of real time without using the CPU is
    taken as hanging: the clock jumps to its deadline (``FakeClock.autojump``). The event
    loop of a test that uses this fixture is a ``VirtualTimeLoop``: its time moves with
    this clock (from where it was, on a loop shared with earlier tests), and when every
    task waits on a timer the clock jumps to it; it waits as long for work in its
    executor threads, child processes or sockets before it jumps. Every other event
    loop, in this thread or another, keeps real time.
    """
    from resilient.testing import FakeClock, use_clock

    clock = FakeClock(autojump=_AUTOJUMP)
    with use_clock(clock), _driving_loops(clock):
        yield clock


_AUTOJUMP = 0.5  # real seconds

# The event loops made for tests that use ``fake_clock``, and the clock of the test running
# now: a loop made before its test's clock exists (by an earlier fixture) is given it then.
_loops: weakref.WeakSet[VirtualTimeLoop] = weakref.WeakSet()
_clocks: list[FakeClock] = []


@contextmanager
def _driving_loops(clock: FakeClock) -> Iterator[None]:
    _clocks.append(clock)
    for loop in list(_loops):
        if loop.clock is None:
            loop.clock = clock
    try:
        yield
    finally:
        _clocks.remove(clock)
        for loop in list(_loops):
            if loop.clock is clock:
                loop.clock = _clocks[-1] if _clocks else None


def _virtual_time_loop() -> VirtualTimeLoop:
    """A new event loop on the running test's fake clock (real time until it has one)."""
    from resilient.testing import VirtualTimeLoop

    loop = VirtualTimeLoop(_clocks[-1] if _clocks else None)
    _loops.add(loop)
    return loop


def _policy_loop() -> Any:
    """A new event loop from the event loop policy in force, as without any factory."""
    import asyncio

    return asyncio.new_event_loop()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
    """pytest-asyncio 1.4+: a test that uses ``fake_clock`` runs on a ``VirtualTimeLoop``."""
    if "fake_clock" in getattr(item, "fixturenames", ()):
        return {"asyncio": _virtual_time_loop}
    if len(item.ihook.pytest_asyncio_loop_factories.get_hookimpls()) > 1:
        return None  # another plugin or a conftest chooses this test's loop
    return {"asyncio": _policy_loop}  # pytest-asyncio wants an answer for every test


# pytest-asyncio before 1.4 has no loop factories: it takes the event loop policy from its
# ``event_loop_policy`` fixture, which the plugin then provides, and makes each loop
# (a test's, or a class's, module's, package's or session's shared by its tests) in a
# fixture of its own. The policy makes a ``VirtualTimeLoop`` for such a fixture when the
# tests it serves include one that uses ``fake_clock`` (real time until a clock drives
# it), and asks the policy in force for every other loop.
_virtual_next: set[int] = set()  # threads making a loop for tests that use fake_clock

# pytest-asyncio's loop fixtures: ``event_loop`` and ``<node id>::<event_loop>`` (0.23),
# ``_<scope>_event_loop`` (0.24 to 1.3).
_LOOP_FIXTURES = frozenset(
    {"event_loop"}
    | {f"_{scope}_event_loop" for scope in ("function", "class", "module", "package", "session")}
)


def _provide_event_loop_policy(config: pytest.Config) -> None:
    # A plugin registered after pytest-asyncio: its fixture is the one tests get.
    holder = types.ModuleType("resilient_pytest_event_loop_policy")
    holder.event_loop_policy = pytest.fixture(  # type: ignore[attr-defined]
        scope="session", name="event_loop_policy"
    )(_event_loop_policy)
    holder.pytest_fixture_setup = _make_loops_virtual  # type: ignore[attr-defined]
    config.pluginmanager.register(holder, holder.__name__)


def _event_loop_policy() -> Any:
    import asyncio

    return _virtual_time_policy(asyncio.get_event_loop_policy())


@pytest.hookimpl(hookwrapper=True)
def _make_loops_virtual(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    """While pytest-asyncio makes the loop for tests that include one using fake_clock,
    the policy makes a ``VirtualTimeLoop``."""
    name = fixturedef.argname
    if (name in _LOOP_FIXTURES or name.endswith("::<event_loop>")) and _serves_fake_clock(request):
        thread = threading.get_ident()
        _virtual_next.add(thread)
        try:
            yield
        finally:
            _virtual_next.discard(thread)
    else:
        yield


def _serves_fake_clock(request: pytest.FixtureRequest) -> bool:
    """Whether a test under the loop fixture's node uses ``fake_clock``."""
    node = request.node
    return any(
        "fake_clock" in getattr(item, "fixturenames", ()) and node in item.listchain()
        for item in request.session.items
    )


def _virtual_time_policy(base: Any) -> Any:
    import asyncio

    class VirtualTimePolicy(asyncio.AbstractEventLoopPolicy):
        def get_event_loop(self) -> Any:
            return base.get_event_loop()

        def set_event_loop(self, loop: Any) -> None:
            base.set_event_loop(loop)

        def new_event_loop(self) -> Any:
            if threading.get_ident() in _virtual_next:
                return _virtual_time_loop()
            return base.new_event_loop()

        def get_child_watcher(self) -> Any:  # Python before 3.14
            return base.get_child_watcher()

        def set_child_watcher(self, watcher: Any) -> None:  # Python before 3.14
            base.set_child_watcher(watcher)

    return VirtualTimePolicy()


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

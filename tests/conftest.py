"""The suite's shared fixtures, in one place; resilient's own pytest plugin provides the rest.

From the plugin (``resilient_pytest``, as users get it): fresh global state around every
test, ``fake_clock`` (virtual time for the decorators and the test's event loop),
``resilient_metrics``, ``resilient_store``, ``breakers`` and the markers. Here: the
metrics ``sink`` and ``make_store``, which runs a breaker test once per store (the Redis
ones on the session's shared server). Each folder's conftest holds what its tests alone
use: the Redis servers (stores/), StatsD (metrics/), a scripted HTTP server
(http_client/). The folders follow the package's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings
from redis_server import shared_server

from resilient.stores import MemoryStore
from resilient.typing import StateStore

if TYPE_CHECKING:
    from resilient.metrics import MemorySink
    from resilient_pytest import MetricsRecorder

# The plugin is loaded by its entry point when resilient is installed; from a checkout
# without it, the conftest loads it.
_INSTALLED = any(ep.value == "resilient_pytest" for ep in entry_points(group="pytest11"))
pytest_plugins = () if _INSTALLED else ("resilient_pytest",)

# Under CI, hypothesis loads its own "ci" profile, which is derandomized: the same examples on
# every run. .ci/run also runs the suite with ``--hypothesis-profile=random`` so that each CI
# run explores new examples; a failure prints the blob that reproduces it.
settings.register_profile("random", derandomize=False, database=None, print_blob=True)


@pytest.fixture
def sink(resilient_metrics: MetricsRecorder) -> MemorySink:
    """The plugin's memory sink, installed as the metrics sink for the test."""
    return resilient_metrics.sink


STORES = [
    pytest.param(MemoryStore, id="memory"),
    # The Redis stores, against a real redis-server (tests/redis_server.py; skipped with
    # the reason when it is not installed). They run on the breaker's clock
    # (clock="local"), so the FakeClock drives them like MemoryStore.
    pytest.param("redis", id="redis"),
    pytest.param("aredis", id="aredis"),
]

# Tests that stay on the in-memory stores, and why.
REDIS_SKIPS = {
    # Tens of thousands of script calls from 8 threads: seconds of round trips, for rules
    # the model test already checks call by call against the Redis stores.
    "test_rate_counts_are_exact_under_threads": "80,000 script round trips: too slow here",
    "test_consecutive_counts_under_threads": "16,000 script round trips: too slow here",
    # AsyncRedisStore awaits the network where MemoryStore answers at once; this test
    # counts event-loop turns (tests/stores/test_redis_fleet.py covers a half-open herd).
    "test_a_thousand_tasks_in_half_open_send_exactly_the_probes[aredis]": (
        "counts event-loop turns, AsyncRedisStore awaits the network"
    ),
}


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], StateStore]]:
    """A factory of fresh, empty stores of one kind: a test taking it runs once per store."""
    if not isinstance(request.param, str):
        factory: Callable[[], StateStore] = request.param
        yield factory
        return
    test = request.function.__name__
    reason = REDIS_SKIPS.get(test) or REDIS_SKIPS.get(f"{test}[{request.param}]")
    if reason is not None:
        pytest.skip(reason)
    from redis_server import redis_stores

    with redis_stores(shared_server(), asynchronous=request.param == "aredis") as factory:
        yield factory


@pytest.fixture(autouse=True)
def _no_deadline_left_behind() -> Iterator[None]:
    """Every test leaves the thread's deadline as it found it: a timeout, middleware or
    stream that forgot to restore it would make every later call on the thread time out."""
    from resilient._runtime import deadline

    before = deadline.current()
    yield
    after = deadline.current()
    if after != before:
        deadline.set(before)  # later tests start clean even when this one fails
        pytest.fail(f"the test left the deadline {after!r} behind (was {before!r})")

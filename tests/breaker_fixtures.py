"""Fixtures for the breaker tests; import the ones a module uses.

``make_store`` is parametrized over every store, so a test taking it runs once per
store: the Redis issue adds one ``pytest.param`` here and every such test covers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from resilient.stores import MemoryStore
from resilient.typing import StateStore

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
    # counts event-loop turns (tests/test_redis_fleet.py covers a half-open herd).
    "test_a_thousand_tasks_in_half_open_send_exactly_the_probes[aredis]": (
        "counts event-loop turns, AsyncRedisStore awaits the network"
    ),
}


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], StateStore]]:
    """A factory of fresh, empty stores of one kind."""
    if not isinstance(request.param, str):
        factory: Callable[[], StateStore] = request.param
        yield factory
        return
    test = request.function.__name__
    reason = REDIS_SKIPS.get(test) or REDIS_SKIPS.get(f"{test}[{request.param}]")
    if reason is not None:
        pytest.skip(reason)
    from redis_server import redis_stores, shared_server

    with redis_stores(shared_server(), asynchronous=request.param == "aredis") as factory:
        yield factory

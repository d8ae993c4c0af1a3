"""RetryBudget: retries stay within a share of the calls, in one process or a fleet."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis_server import RedisServer, unique_prefix
from strategies import BoomError

from resilient import ConfigError, retry
from resilient._retry.budget import RetryBudget
from resilient._runtime import config as _config
from resilient.stores import MemoryStore
from resilient.testing import FakeClock


def counting(budget: RetryBudget, *, attempts: int = 3) -> tuple[Any, Any, list[int]]:
    """``(ok, failing, reached)``: two functions behind ``@retry(budget=...)``."""
    reached = [0]

    @retry(attempts=attempts, initial_delay=0, jitter=0, budget=budget)
    def ok() -> str:
        return "ok"

    @retry(attempts=attempts, initial_delay=0, jitter=0, budget=budget)
    def failing() -> None:
        reached[0] += 1
        raise BoomError

    return ok, failing, reached


def fail_many(failing: Any, times: int) -> None:
    for _ in range(times):
        with pytest.raises(BoomError):
            failing()


def test_retries_stay_within_the_ratio(fake_clock: FakeClock) -> None:
    """After 100 calls, a 10 % budget allows 10 retries; then each call is tried once."""
    budget = RetryBudget(0.1, window=10, min_per_second=0)
    ok, failing, reached = counting(budget)
    for _ in range(100):
        ok()
    fail_many(failing, 20)
    # 20 first attempts, and the 120 calls made earn 12 retries.
    assert reached[0] == 20 + 12


def test_a_quiet_service_may_still_retry(fake_clock: FakeClock) -> None:
    """min_per_second retries per second are always allowed, calls or not."""
    budget = RetryBudget(0.1, window=10, min_per_second=0.5)
    _, failing, reached = counting(budget, attempts=2)
    fail_many(failing, 10)
    assert reached[0] == 10 + 6  # 0.5/s over a 10 s window, plus 10 % of the 10 calls


def test_old_calls_leave_the_window(fake_clock: FakeClock) -> None:
    """Calls older than the window no longer pay for retries."""
    budget = RetryBudget(0.5, window=10, min_per_second=0)
    ok, failing, reached = counting(budget, attempts=2)
    for _ in range(100):
        ok()
    fake_clock.advance(60)
    fail_many(failing, 4)
    assert reached[0] == 4 + 2  # only the 4 new calls count: 2 retries


async def test_async_retries_stay_within_the_budget(fake_clock: FakeClock) -> None:
    """Async calls are counted and their retries limited by a MemoryStore-backed budget."""
    budget = RetryBudget(0.1, window=10, min_per_second=0, store=MemoryStore())
    reached = [0]

    @retry(attempts=3, initial_delay=0, jitter=0, budget=budget)
    async def ok() -> str:
        return "ok"

    @retry(attempts=3, initial_delay=0, jitter=0, budget=budget)
    async def failing() -> None:
        reached[0] += 1
        raise BoomError

    for _ in range(100):
        assert await ok() == "ok"
    notes: list[str] = []
    for _ in range(20):
        with pytest.raises(BoomError) as caught:
            await failing()
        notes.extend(caught.value.__notes__)
    # 20 first attempts, and the 120 calls made earn 12 retries.
    assert reached[0] == 20 + 12
    assert "with the retry budget spent" in notes[-1]


def test_the_budget_must_be_a_retry_budget() -> None:
    """A wrong ``budget`` is refused when the decorator is made."""
    with pytest.raises(ConfigError, match="budget"):
        retry(budget=0.1)  # type: ignore[arg-type]


def test_a_memory_store_keeps_the_budget_local(fake_clock: FakeClock) -> None:
    """MemoryStore cannot share a budget: it stays this process's."""
    budget = RetryBudget(0.1, min_per_second=0, store=MemoryStore())
    _, failing, reached = counting(budget)
    fail_many(failing, 10)
    assert reached[0] == 10 + 1


@pytest.fixture
def fleet(redis_server: RedisServer) -> Iterator[Any]:
    from resilient.stores.redis import RedisStore

    prefix = unique_prefix()
    stores = [RedisStore(redis_server.url, prefix=prefix, cache_ttl=0.05) for _ in range(2)]
    yield stores
    for store in stores:
        store.close()


def test_the_fleet_shares_one_budget(fleet: Any) -> None:
    """Calls made in one process pay for retries in another (synced every cache_ttl)."""
    here = RetryBudget(0.1, window=30, min_per_second=0, name="api", store=fleet[0])
    there = RetryBudget(0.1, window=30, min_per_second=0, name="api", store=fleet[1])
    ok, _, _ = counting(here)
    _, failing, reached = counting(there)
    for _ in range(200):
        ok()
    # Wait until the other process has heard of those calls (its listener brings them).
    deadline = time.monotonic() + 5
    while there._totals(_config.state.now())[0] < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    fail_many(failing, 30)
    assert reached[0] == 30 + 23  # 10 % of the fleet's 230 calls

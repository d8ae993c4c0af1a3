"""The Redis scripts' own rules, checked against a real server: budget windows, expiry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis_server import RedisServer, redis_server, unique_prefix  # noqa: F401 - a fixture

from resilient.stores import _lua


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Any]:  # noqa: F811 - the fixture
    import redis

    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def within_one_second(client: Any, run: Callable[[int, str], Any]) -> tuple[int, Any]:
    """``run(second, key)`` on a fresh key, repeated until the server's clock stayed within
    one second for the whole run (so the script saw that ``second``)."""
    for _ in range(20):
        key = f"{unique_prefix()}:{{budget}}"
        before = int(client.time()[0])
        answer = run(before, key)
        if int(client.time()[0]) == before:
            return before, answer
    raise AssertionError("the server's clock never stayed within one second")


def budget(client: Any, key: str, calls: int, retries: int, window: float) -> tuple[int, int]:
    reply = client.register_script(_lua.BUDGET)(keys=[key], args=[calls, retries, window])
    return int(reply[0]), int(reply[1])


@pytest.mark.parametrize(
    ("window", "inside", "outside"),
    [(10.0, 9, 10), (1.0, 0, 1), (2.5, 2, 3)],
)
def test_a_budget_counts_exactly_the_last_window_seconds(
    client: Any, window: float, inside: int, outside: int
) -> None:
    """The budget sums the ceil(window) whole seconds up to now; an older second is dropped."""

    def run(second: int, key: str) -> tuple[int, int]:
        client.hset(
            key,
            mapping={
                f"c{second - inside}": 1,
                f"r{second - inside}": 2,
                f"c{second - outside}": 100,
                f"r{second - outside}": 200,
            },
        )
        return budget(client, key, 0, 0, window)

    _, totals = within_one_second(client, run)
    assert totals == (1, 2)


def test_a_budget_drops_the_seconds_that_left_the_window(client: Any) -> None:
    """Seconds older than the window are deleted from the hash, the others stay."""

    def run(second: int, key: str) -> set[bytes]:
        client.hset(key, mapping={f"c{second - 1}": 1, f"c{second - 30}": 5})
        budget(client, key, 0, 0, 10.0)
        return set(client.hkeys(key))

    second, fields = within_one_second(client, run)
    assert fields == {f"c{second - 1}".encode()}


def test_a_budget_adds_calls_and_retries_to_this_second(client: Any) -> None:
    """Calls and retries are added to the current second; a zero count adds no field."""

    def run(second: int, key: str) -> tuple[tuple[int, int], tuple[int, int], dict[bytes, bytes]]:
        first = budget(client, key, 3, 0, 10.0)
        second_totals = budget(client, key, 0, 2, 10.0)
        return first, second_totals, client.hgetall(key)

    second, (first, then, fields) = within_one_second(client, run)
    assert first == (3, 0)
    assert then == (3, 2)
    assert fields == {f"c{second}".encode(): b"3", f"r{second}".encode(): b"2"}


def test_a_budget_with_nothing_new_writes_no_field(client: Any) -> None:
    """A sync with no calls and no retries adds nothing to the hash."""

    def run(second: int, key: str) -> tuple[tuple[int, int], bool]:
        totals = budget(client, key, 0, 0, 10.0)
        return totals, bool(client.exists(key))

    _, (totals, exists) = within_one_second(client, run)
    assert totals == (0, 0)
    assert not exists


def test_a_budget_key_expires_a_second_after_its_window(client: Any) -> None:
    """The budget's hash expires window + 1 s after its last sync."""
    key = f"{unique_prefix()}:{{budget}}"
    budget(client, key, 1, 0, 2.5)
    assert 3400 < client.pttl(key) <= 3500

"""The Redis scripts' own rules, checked against a real server: budget windows, expiry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis_server import RedisServer, unique_prefix

from resilient import BreakerConfig
from resilient._circuit import rules as _circuit
from resilient.stores import _lua


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Any]:
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
    budget(client, key, 1, 0, 100.0)
    assert 100_900 < client.pttl(key) <= 101_000


# --- the breaker script (TRANSITION): what it writes, announces and answers ------------------

KEY_TTL_MS = 1000


def transition(
    client: Any,
    key: str,
    config: BreakerConfig,
    *events: tuple[str, int, float, str],
    channel: str = "",
) -> list[Any]:
    """Run the breaker script once with ``events`` (kind, ticket, duration, now)."""
    args: list[object] = [KEY_TTL_MS, channel, "rules-test", *_lua.rules_args(config), "", "", ""]
    args.append("")  # no deadline
    for kind, ticket, duration, now in events:
        args += [kind, ticket, _lua.number(duration), now]
    reply: list[Any] = client.register_script(_lua.TRANSITION)(keys=[key], args=args)
    return reply


def breaker_key() -> str:
    return f"{unique_prefix()}:{{rules}}:state"


def test_an_event_that_changes_nothing_writes_nothing(client: Any) -> None:
    """An admitted call on a closed breaker leaves a breaker never written unwritten, and its
    version says so (negative: as of the server's time)."""
    key = breaker_key()
    reply = transition(client, key, BreakerConfig(), ("acquire", 0, 0.0, ""))
    assert client.exists(key) == 0
    assert float(reply[1]) < 0


def test_an_unchanged_breaker_answers_with_its_stored_version(client: Any) -> None:
    """An event that changes nothing answers with the version of the state as stored."""
    key = breaker_key()
    config = BreakerConfig(failure_threshold=5)
    transition(client, key, config, ("failure", 0, 0.0, ""))
    stored = client.hget(key, "version")
    reply = transition(client, key, config, ("acquire", 0, 0.0, ""))
    assert _lua.as_text(reply[1]) == stored.decode()
    assert int(stored) > 0


def test_a_version_ahead_of_the_server_clock_still_increases(client: Any) -> None:
    """A stored version later than the server's time (another server's clock) goes up by
    one on the next change, so states stay ordered."""
    key = breaker_key()
    ahead = 4 * 10**15 + 7  # the server's clock is near 1.8e15 us; exact in a double
    client.hset(key, mapping={"mode": "closed", "gen": "0", "version": str(ahead)})
    reply = transition(client, key, BreakerConfig(failure_threshold=5), ("failure", 0, 0.0, ""))
    assert int(_lua.as_text(reply[1])) == ahead + 1
    assert int(client.hget(key, "version")) == ahead + 1


def test_a_change_of_counts_alone_is_not_announced(client: Any) -> None:
    """A success that only moves a rate window is written but not published; a change of
    mode is."""
    key = breaker_key()
    channel = f"{unique_prefix()}:events"
    config = BreakerConfig(failure_rate=0.5, window_size=10, minimum_calls=10)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel)
    try:
        transition(client, key, config, ("success", 0, 0.0, ""), channel=channel)
        assert client.hget(key, "window") == b"s"
        transition(client, key, config, ("force_open", 0, 0.0, ""), channel=channel)
        message = None
        for _ in range(100):
            message = listener.get_message(timeout=1.0)
            if message is not None:
                break
        assert message is not None
        assert message["data"].split(b"|")[2] == b"forced_open"
    finally:
        listener.close()


def test_a_time_window_keeps_the_key_for_the_whole_window(client: Any) -> None:
    """A breaker counting in a 60 s window keeps its key 60 s plus the idle expiry."""
    key = breaker_key()
    config = BreakerConfig(failure_rate=0.5, window_duration=60, minimum_calls=10)
    transition(client, key, config, ("success", 0, 0.0, ""))
    assert 60_950 < client.pttl(key) <= 61_000


def test_a_half_open_key_lives_until_the_latest_lease_in_any_order(client: Any) -> None:
    """With probes stored out of order, the key lives until the latest lease ends."""
    key = breaker_key()
    now = int(client.time()[0])
    probes = f"7:{now + 100},8:{now + 10},9:{now + 50}"
    client.hset(
        key,
        mapping={"mode": "half_open", "gen": "9", "probes": probes, "version": "1"},
    )
    config = BreakerConfig(success_threshold=5, half_open_max_calls=5)
    transition(client, key, config, ("release", 9, 0.0, ""))
    assert client.hget(key, "probes") == f"7:{now + 100},8:{now + 10}".encode()
    seconds, micros = client.time()
    left = (now + 100 - (seconds + micros / 1e6)) * 1000  # ms until the latest lease ends
    # the key outlives that lease (50 ms: the round trip between the two readings), and
    # by at most the script's one second of margin
    assert left - 50 <= client.pttl(key) <= 101_000


@pytest.mark.parametrize("now", [-1.3, -0.05, -7.0, -2.5])
def test_buckets_before_time_zero_are_numbered_as_python_numbers_them(
    client: Any, now: float
) -> None:
    """A clock before zero (a FakeClock may start there, with clock="local") puts a call in
    the same time bucket in Lua as Python's floor division does."""
    key = breaker_key()
    config = BreakerConfig(failure_rate=0.5, window_duration=2.5, minimum_calls=10)
    transition(client, key, config, ("success", 0, 0.0, _lua.number(now)))
    expected, _ = _circuit.transition(
        _circuit.INITIAL, _circuit.Event(_circuit.Kind.SUCCESS, 0, 0.0), now, config
    )
    stored, _ = _lua.decode(client.hmget(key, *_lua.FIELDS, "version"))
    assert stored.buckets == expected.buckets

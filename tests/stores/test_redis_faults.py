"""RedisStore and AsyncRedisStore against a real server that misbehaves: read-only,
refusing scripts, holding a key of the wrong type, publishing forged messages, dying
and coming back, or configured wrongly.

Real time passes here (a real server answers), in waits of milliseconds for its I/O.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from redis_server import (
    RedisServer,
    acl_url,
    command_calls,
    eventually,
    fail,
    free_port,
    missing,
    stores_on,
    unique_prefix,
)
from strategies import BoomError

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient._circuit.rules import BreakerState, Event, Kind
from resilient.exceptions import ConfigError
from resilient.metrics import MemorySink

if missing() is None:
    import redis
    import redis.asyncio as aredis

    from resilient.stores import _lua
    from resilient.stores.redis import AsyncRedisStore, RedisStore

pytestmark = pytest.mark.realtime

THREE = BreakerConfig(failure_threshold=3, reset_timeout=30.0)
FIVE = BreakerConfig(failure_threshold=5, reset_timeout=30.0)
WAIT = 5.0  # seconds a test waits for something that should take milliseconds
NOWHERE = "redis://127.0.0.1:1/0"  # never connected to: the arguments fail first


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Callable[..., Any]]:
    """``make(**options)``: a store on the shared server, one prefix per test (every
    store of a test is one fleet), closed at the end."""
    yield from stores_on(redis_server.url)


def reads_after(client: Any, count: int, command: str = "hmget") -> bool:
    """Wait until the server has run ``count`` more HMGETs (the listener's re-reads), or
    of another ``command``."""
    before = command_calls(client).get(command, 0)
    return eventually(lambda: command_calls(client).get(command, 0) >= before + count)


async def _aboom() -> None:
    raise BoomError


TRANSITIONS = ("resilient: circuit breaker", "resilient: degradation level")
"""Lines about breakers changing state (logged on purpose, one per change), not outages."""


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING lines about trouble (a breaker's transitions are logged apart)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and not r.getMessage().startswith(TRANSITIONS)
    ]


# --- a Redis that reads but does not write ------------------------------------------------


def test_a_read_only_replica_lets_the_breaker_open_at_its_threshold(
    replica_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a replica that serves reads and refuses writes, the failures are counted here
    while the listener keeps reading the never-written shared state; the breaker opens at
    its threshold, and one line gives the reason (READONLY)."""
    client: Any = replica_redis_server.client()
    with caplog.at_level(logging.WARNING, logger="resilient"):
        store = RedisStore(replica_redis_server.url, retry_interval=0.01)
        try:
            b = CircuitBreaker("svc", FIVE, store=store)
            for failures in range(1, 5):
                fail(b)
                assert reads_after(client, 2)  # the listener tried Redis again, twice
                assert b.failures == failures
                assert not b.opened
            fail(b)
            assert b.opened
            with pytest.raises(CircuitOpenError):
                b.call(lambda: None)
            assert not store.reachable
        finally:
            store.close()
    lines = warnings(caplog)
    assert len(lines) == 1, lines
    assert "READONLY" in lines[0]
    assert "refuses writes" in lines[0]


def test_redis_counts_as_back_only_once_a_script_has_written(
    replica_redis_server: RedisServer,
) -> None:
    """When the replica is promoted, the store is reachable again; the local trip stands
    (Redis holds nothing newer) until a reset written to Redis closes it."""
    client: Any = replica_redis_server.client()
    store = RedisStore(replica_redis_server.url, retry_interval=0.01, cache_ttl=0.02)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b, 3)
        assert b.opened
        assert reads_after(client, 2)
        assert not store.reachable  # reads answer, yet Redis is not back
        client.execute_command("REPLICAOF", "NO", "ONE")
        assert eventually(lambda: store.reachable)
        assert reads_after(client, 2)
        assert b.opened
        b.reset()
        assert client.hget(store.key("svc"), "mode") == b"closed"
        assert not b.opened
    finally:
        store.close()


def test_an_acl_without_evalsha_lets_the_breaker_open_at_its_threshold(
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A user who may read but not run scripts (check=False, so the store is made): the
    failures are counted here across the listener's retries, the breaker opens at its
    threshold, and one line says NOPERM."""
    url = acl_url(redis_server, "~*", "&*", "+@all", "-evalsha", "-eval")
    client: Any = redis_server.client()
    with caplog.at_level(logging.WARNING, logger="resilient"):
        store = RedisStore(url, prefix=unique_prefix(), retry_interval=0.01, check=False)
        try:
            b = CircuitBreaker("svc", THREE, store=store)
            for failures in (1, 2):
                fail(b)
                assert reads_after(client, 2)
                assert b.failures == failures
            fail(b)
            assert b.opened
            assert client.exists(store.key("svc")) == 0
        finally:
            store.close()
    lines = warnings(caplog)
    assert len(lines) == 1, lines
    assert "NOPERM" in lines[0]


def test_a_full_redis_is_an_outage_for_writes_not_a_configuration_error(
    own_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis at ``maxmemory`` refuses the scripts (OOM): the store is made, one line says
    OOM, and the breaker opens here at its threshold."""
    client: Any = own_redis_server.client()
    client.config_set("maxmemory", 1)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        store = RedisStore(own_redis_server.url, retry_interval=60.0)
        try:
            assert not store.reachable
            b = CircuitBreaker("svc", THREE, store=store)
            fail(b, 3)
            assert b.opened
        finally:
            store.close()
    lines = warnings(caplog)
    assert len(lines) == 1, lines
    assert "OOM" in lines[0]


async def test_the_async_store_counts_locally_on_a_read_only_replica(
    replica_redis_server: RedisServer,
) -> None:
    """AsyncRedisStore on a read-only replica: the breaker opens at its threshold."""
    client: Any = replica_redis_server.client()
    store = AsyncRedisStore(replica_redis_server.url, retry_interval=0.01, check=False)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        for _ in range(3):
            with pytest.raises(BoomError):
                await b.acall(_aboom)
            assert reads_after(client, 1)
        assert b.opened
        assert not store.reachable
    finally:
        await store.aclose()


# --- trouble with one key is that breaker's alone ---------------------------------------------


def test_a_key_of_the_wrong_type_cuts_off_only_its_breaker(
    make: Callable[..., Any],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A string planted at one breaker's key: that breaker counts here and opens at its
    threshold, one line names it (WRONGTYPE), and another breaker still writes to Redis."""
    client: Any = redis_server.client()
    store = make(cache_ttl=0.01)
    client.set(store.key("bad"), "planted")
    with caplog.at_level(logging.WARNING, logger="resilient"):
        bad = CircuitBreaker("bad", THREE, store=store)
        good = CircuitBreaker("good", THREE, store=store)
        fail(bad, 2)
        assert reads_after(client, 3)  # the listener re-read both, more than once
        fail(bad)
        assert bad.opened
        fail(good, 2)
    assert store.reachable
    assert client.hget(store.key("good"), "failures") == b"2"
    assert client.get(store.key("bad")) == b"planted"
    lines = warnings(caplog)
    assert len(lines) == 1, lines
    assert "'bad'" in lines[0]
    assert "WRONGTYPE" in lines[0]


def test_a_corrupt_state_cuts_off_only_its_breaker(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """A breaker hash with fields no script can read: that breaker goes on locally, the
    store stays reachable, and another breaker still writes to Redis."""
    client: Any = redis_server.client()
    store = make()
    client.hset(store.key("bad"), mapping={"mode": "closed", "gen": "x", "failures": "y"})
    bad = CircuitBreaker("bad", THREE, store=store)
    good = CircuitBreaker("good", THREE, store=store)
    fail(bad, 3)
    assert bad.opened
    fail(good)
    assert store.reachable
    assert client.hget(store.key("good"), "failures") == b"1"


def test_a_name_that_cannot_be_encoded_never_cuts_off_the_store(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """A name with a lone surrogate, given to the store directly: that breaker is kept in
    this process (it opens at its threshold); the store stays reachable and others write."""
    client: Any = redis_server.client()
    store = make()
    name = "file-\udcff"
    state = store.get(name)
    for _ in range(3):
        state, _ = store.apply(name, Event(Kind.FAILURE, state.gen), time.monotonic(), THREE)
    assert state.mode is BreakerMode.OPEN
    assert store.get(name).mode is BreakerMode.OPEN
    good = CircuitBreaker("good", THREE, store=store)
    fail(good)
    assert store.reachable
    assert client.hget(store.key("good"), "failures") == b"1"


async def test_the_async_store_keeps_one_bad_key_to_its_breaker(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """AsyncRedisStore: a key of the wrong type opens its breaker locally; another
    breaker's failure is written to Redis."""
    client: Any = redis_server.client()
    store = make(AsyncRedisStore)
    client.set(store.key("bad"), "planted")
    bad = CircuitBreaker("bad", THREE, store=store)
    good = CircuitBreaker("good", THREE, store=store)
    for _ in range(3):
        with pytest.raises((BoomError, CircuitOpenError)):
            await bad.acall(_aboom)
    assert bad.opened
    with pytest.raises(BoomError):
        await good.acall(_aboom)
    assert store.reachable
    assert client.hget(store.key("good"), "failures") == b"1"
    await store.aclose()


def test_a_flag_of_the_wrong_type_never_cuts_off_the_store(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """A flag key holding a hash: reading that flag gives ``None``; the store stays
    reachable and breakers keep writing to Redis."""
    client: Any = redis_server.client()
    store = make()
    client.hset(f"{store.prefix}:flag:feature", "x", "1")
    assert store.get_flag("feature") is None
    good = CircuitBreaker("good", THREE, store=store)
    fail(good)
    assert store.reachable
    assert client.hget(store.key("good"), "failures") == b"1"


def test_a_budget_key_of_the_wrong_type_never_cuts_off_the_store(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """A shared retry budget whose key holds a string: the listener skips that budget
    and goes on; the store stays reachable and breakers keep writing to Redis."""
    from resilient import RetryBudget

    client: Any = redis_server.client()
    store = make(cache_ttl=0.01)
    client.set(f"{store.prefix}:{{budget:ai}}:counts", "planted")
    budget = RetryBudget(0.1, store=store, name="ai")
    assert reads_after(client, 3, "evalsha")  # the listener synced the budget 3 times
    good = CircuitBreaker("good", THREE, store=store)
    fail(good)
    assert store.reachable
    assert client.hget(store.key("good"), "failures") == b"1"
    assert budget.name == "ai"


# --- pub/sub messages are hints ---------------------------------------------------------------


def _message(version: str, state: BreakerState, name: str) -> str:
    return "|".join(["s", version, *_lua.encode(state), name])


def test_a_forged_message_never_sets_a_state(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """``s|99999999999999999|open|...`` published by hand: the store reads the breaker
    from Redis instead, so it stays closed, takes later changes, and reset() works."""
    client: Any = redis_server.client()
    here_store, there_store = make(cache_ttl=60.0), make(cache_ttl=60.0)
    here = CircuitBreaker("svc", THREE, store=here_store)
    there = CircuitBreaker("svc", THREE, store=there_store)
    assert here_store.listening.wait(WAIT)
    forged = BreakerState(BreakerMode.OPEN, 7, 3, 0, 0.0, 1e12, 1)
    client.publish(f"{here_store.prefix}:events", _message("99999999999999999", forged, "svc"))
    fail(there, 2)  # counted in Redis, not announced: the forged state is not taken
    assert not here.opened
    fail(there)  # a genuine change, announced after the forged one
    assert eventually(lambda: here.opened)
    assert here.snapshot().open_until < forged.open_until / 2  # Redis's state, not the forgery
    assert here.snapshot().gen != forged.gen
    here.reset()
    assert not here.opened
    assert eventually(lambda: not there.opened)


def test_a_malformed_message_never_cuts_off_the_store(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """Messages that do not parse are ignored: the store stays reachable and the next
    genuine change arrives."""
    client: Any = redis_server.client()
    here_store, there_store = make(cache_ttl=60.0), make(cache_ttl=60.0)
    here = CircuitBreaker("svc", THREE, store=here_store)
    there = CircuitBreaker("svc", THREE, store=there_store)
    assert here_store.listening.wait(WAIT)
    channel = f"{here_store.prefix}:events"
    client.publish(channel, _message("not-a-number", BreakerState(), "svc"))
    client.publish(channel, "s|1|open|svc")
    client.publish(channel, b"s|\xff\xfe|")
    fail(there, 3)  # opens it: a change of state, announced (counts are not)
    assert eventually(lambda: here.mode is BreakerMode.OPEN)
    assert here_store.reachable


# --- configuration errors raise when the store is made -------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wrong_credentials_raise_when_the_store_is_made(
    redis_server: RedisServer,
    kind: str,
) -> None:
    """A wrong password raises ConfigError naming ``url``, the password hidden."""
    url = acl_url(redis_server, "~*", "&*", "+@all").replace(":pw@", ":wrong-secret@")
    store_kind = RedisStore if kind == "sync" else AsyncRedisStore
    with pytest.raises(ConfigError) as caught:
        store_kind(url)
    assert caught.value.parameter == "url"
    assert "wrong-secret" not in str(caught.value)
    assert ":***@" in str(caught.value)
    assert "credentials" in str(caught.value)


def test_a_password_missing_raises_when_the_store_is_made(
    own_redis_server: RedisServer,
) -> None:
    """A server that requires a password, given none: ConfigError."""
    client: Any = own_redis_server.client()
    client.config_set("requirepass", "s3cret")
    # redis-py 5.0 words it "Authentication required", newer releases quote Redis's NOAUTH.
    with pytest.raises(ConfigError, match=r"NOAUTH|Authentication required"):
        RedisStore(own_redis_server.url)


@pytest.mark.parametrize(
    "rules",
    [
        ("~*", "&*", "+@all", "-evalsha", "-eval"),  # no scripts
        ("~other:*", "&*", "+@all"),  # not the store's keys
        ("~*", "resetchannels", "+@all"),  # not the store's channel
    ],
    ids=["no-scripts", "no-keys", "no-channel"],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_acl_denial_raises_when_the_store_is_made(
    redis_server: RedisServer,
    rules: tuple[str, ...],
    kind: str,
) -> None:
    """A user the ACL denies scripts, the store's keys or its channel: ConfigError."""
    url = acl_url(redis_server, *rules)
    store_kind = RedisStore if kind == "sync" else AsyncRedisStore
    with pytest.raises(ConfigError) as caught:
        store_kind(url, prefix=unique_prefix())
    assert caught.value.parameter == "url"
    assert "a user allowed to run EVALSHA" in str(caught.value)


def test_an_unknown_database_raises_when_the_store_is_made(
    redis_server: RedisServer,
) -> None:
    """``/99`` on a server with 16 databases: ConfigError, from either store."""
    url = redis_server.url.rsplit("/", 1)[0] + "/99"
    with pytest.raises(ConfigError, match="database"):
        RedisStore(url)
    with pytest.raises(ConfigError, match="database"):
        AsyncRedisStore(url)


def test_a_given_client_with_wrong_credentials_raises(
    redis_server: RedisServer,
) -> None:
    """A redis.Redis client (sync store) or redis.asyncio.Redis client (async store)
    with a wrong password: ConfigError, the client as the value."""
    user = acl_url(redis_server, "~*", "&*", "+@all").split("//")[1].split(":")[0]
    sync_client = redis.Redis(port=redis_server.port, username=user, password="bad")
    with pytest.raises(ConfigError) as caught:
        RedisStore(sync_client)
    assert caught.value.value is sync_client
    async_client = aredis.Redis(port=redis_server.port, username=user, password="bad")
    with pytest.raises(ConfigError):
        AsyncRedisStore(async_client)
    sync_client.close()


def test_a_host_that_does_not_resolve_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name the resolver says does not exist: ConfigError; a resolver that does
    not answer is an outage instead (it may pass)."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "nohost.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host == "slowdns.invalid":
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ConfigError, match="resolves"):
        RedisStore("redis://nohost.invalid:6379/0")
    with pytest.raises(ConfigError, match="resolves"):
        AsyncRedisStore("redis://nohost.invalid:6379/0")
    store = RedisStore("redis://slowdns.invalid:6379/0", retry_interval=60.0)
    try:
        assert not store.reachable
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_redis_down_at_start_is_an_outage_not_an_error(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused when the store is made: no error, one line, local breakers."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    store_kind = RedisStore if kind == "sync" else AsyncRedisStore
    with caplog.at_level(logging.WARNING, logger="resilient"):
        store = store_kind(f"redis://127.0.0.1:{free_port()}/0", retry_interval=60.0)
        try:
            assert not store.reachable
            b = CircuitBreaker("svc", THREE, store=store)
            fail(b, 3)
            assert b.opened
        finally:
            store.close()
    assert len(warnings(caplog)) == 1


def test_a_store_made_while_redis_is_down_listens_once_redis_is_writable(
    own_redis_server: RedisServer,
) -> None:
    """Made during an outage, the store reads the shared state when Redis comes back:
    once ``listening`` is set, Redis is reachable and the breaker has the fleet's state
    (forced open), even though it counted a failure of its own meanwhile."""
    client: Any = own_redis_server.client()
    prefix = unique_prefix()
    with RedisStore(own_redis_server.url, prefix=prefix) as other:
        CircuitBreaker("svc", THREE, store=other).force_open()
    pid = own_redis_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # keeps its data, answers nothing
    try:
        store = RedisStore(own_redis_server.url, prefix=prefix, retry_interval=0.01, timeout=0.02)
        b = CircuitBreaker("svc", THREE, store=store)
        assert not store.reachable
        assert b.mode is BreakerMode.CLOSED  # nothing read yet
        fail(b)
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        assert store.listening.wait(WAIT)
        assert store.reachable
        assert b.mode is BreakerMode.FORCED_OPEN
    finally:
        store.close()
    assert client.hget(store.key("svc"), "mode") == b"forced_open"


def test_check_false_makes_no_round_trip(redis_server: RedisServer) -> None:
    """``check=False``: wrong credentials do not raise; the store starts as reachable
    and the first use finds out, as an outage."""
    url = acl_url(redis_server, "~*", "&*", "+@all").replace(":pw@", ":wrong@")
    store = RedisStore(url, check=False, retry_interval=60.0)
    try:
        assert store.reachable
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b)
        assert not store.reachable
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    "url",
    [3, None, b"redis://127.0.0.1/0", "http://127.0.0.1:6379/0", "redis://h:port/0", "x"],
)
def test_what_is_not_a_redis_url_or_client_raises(kind: str, url: Any) -> None:
    """Not a URL of a Redis scheme, nor a client of the store's kind: ConfigError."""
    store_kind = RedisStore if kind == "sync" else AsyncRedisStore
    with pytest.raises(ConfigError) as caught:
        store_kind(url)
    assert caught.value.parameter == "url"


def test_each_store_takes_only_clients_of_its_own_kind() -> None:
    """A sync client to AsyncRedisStore is refused (its calls could not be awaited)."""
    client = redis.Redis(port=1)
    with pytest.raises(ConfigError) as caught:
        AsyncRedisStore(client, check=False)
    assert caught.value.parameter == "url"
    client.close()


# --- every other argument -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("prefix", ""),
        ("prefix", "a{b}"),
        ("prefix", 3),
        ("prefix", "p\udcff"),
        ("timeout", 0),
        ("timeout", -1.0),
        ("timeout", float("nan")),
        ("timeout", "1"),
        ("cache_ttl", 0),
        ("cache_ttl", float("inf")),
        ("key_ttl", 1e-9),
        ("key_ttl", 0.5),
        ("key_ttl", -1),
        ("key_ttl", True),
        ("clock", "wall"),
        ("on_store_error", "raise"),
        ("retry_interval", 0),
        ("trip", "host"),
        ("trip_quorum", 0),
        ("trip_quorum", 1.5),
        ("check", "yes"),
        ("check", None),
    ],
)
def test_every_bad_argument_raises_naming_it(kind: str, parameter: str, value: Any) -> None:
    """Each constructor argument is checked: ConfigError naming it, before any I/O."""
    store_kind = RedisStore if kind == "sync" else AsyncRedisStore
    with pytest.raises(ConfigError) as caught:
        store_kind(NOWHERE, **{parameter: value})
    assert caught.value.parameter == parameter


def test_key_ttl_has_a_documented_minimum(make: Callable[..., Any]) -> None:
    """``key_ttl`` is at least ``MIN_KEY_TTL`` (1 s): that much, or a timedelta, is taken,
    and less is refused."""
    from resilient.stores.redis import MIN_KEY_TTL

    assert MIN_KEY_TTL == 1.0
    store = make(key_ttl=MIN_KEY_TTL)
    assert store.key_ttl == 1.0
    assert make(key_ttl=timedelta(minutes=1)).key_ttl == 60.0
    with pytest.raises(ConfigError, match=">= 1"):
        make(key_ttl=0.999)


def test_a_half_open_key_lives_until_its_last_probe_lease_ends(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """With ``key_ttl`` shorter than the probe lease, a half-open breaker's key still
    lives until the lease ends, plus key_ttl: a slow probe never loses the state."""
    client: Any = redis_server.client()
    store = make(key_ttl=1.0, clock="local")  # the reopening time as this process sees it
    config = BreakerConfig(failure_threshold=1, reset_timeout=0.01, probe_timeout=30.0)
    b = CircuitBreaker("svc", config, store=store)
    fail(b)
    assert eventually(lambda: b.retry_after is None or b.retry_after <= 0)
    seen = []
    b.call(lambda: seen.append(client.pttl(store.key("svc"))))  # the probe, in flight
    assert 30_000 < seen[0] <= 31_000


def test_a_key_counting_in_a_time_window_lives_until_the_window_has_passed(
    make: Callable[..., Any],
    redis_server: RedisServer,
) -> None:
    """With ``key_ttl`` shorter than ``window_duration``, the counts of a time window are
    kept for the whole window, plus key_ttl."""
    client: Any = redis_server.client()
    store = make(key_ttl=1.0)
    config = BreakerConfig(failure_rate=0.5, window_duration=120.0, minimum_calls=100)
    b = CircuitBreaker("svc", config, store=store)
    fail(b)
    assert 120_000 < client.pttl(store.key("svc")) <= 121_000


# --- after an outage ------------------------------------------------------------------------


def test_a_local_trip_outlives_an_outage_until_redis_holds_a_newer_state(
    own_redis_server: RedisServer,
) -> None:
    """Redis killed and restarted empty while the breaker opened here: it stays open
    (an empty Redis is not newer), rejecting calls, until a reset is written after it."""
    prefix = unique_prefix()
    store = RedisStore(own_redis_server.url, prefix=prefix, retry_interval=0.01, cache_ttl=0.02)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b)  # written to Redis
        own_redis_server.kill()
        fail(b, 2)
        assert b.opened
        own_redis_server.start()  # same port, empty
        client: Any = own_redis_server.client()
        assert eventually(lambda: store.reachable)
        assert reads_after(client, 2)
        assert b.opened
        reached = []
        with pytest.raises(CircuitOpenError):
            b.call(lambda: reached.append(1))
        assert reached == []
        with RedisStore(own_redis_server.url, prefix=prefix) as other:
            CircuitBreaker("svc", THREE, store=other).reset()  # newer than the trip
            assert eventually(lambda: not b.opened)
    finally:
        store.close()


def test_a_breaker_back_to_closed_follows_redis_again(
    own_redis_server: RedisServer,
) -> None:
    """A failure counted here during an outage keeps the breaker local after it; its
    next success leaves nothing to keep, and the failure after that is written to Redis."""
    client: Any = own_redis_server.client()
    store = RedisStore(own_redis_server.url, retry_interval=0.01)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        own_redis_server.kill()
        fail(b)
        own_redis_server.start()
        client = own_redis_server.client()
        assert eventually(lambda: store.reachable)
        fail(b)
        assert b.failures == 2  # its own count: Redis holds nothing newer
        assert client.exists(store.key("svc")) == 0
        b.call(lambda: None)
        fail(b)
        assert client.hget(store.key("svc"), "failures") == b"1"
        assert b.failures == 1
    finally:
        store.close()


def test_an_older_shared_state_never_replaces_a_local_trip(
    own_redis_server: RedisServer,
) -> None:
    """Redis frozen after one failure was written: the trip made here meanwhile stands
    when it thaws, since the shared state (one failure) was written before it."""
    client: Any = own_redis_server.client()
    timeout = 0.02
    store = RedisStore(own_redis_server.url, timeout=timeout, retry_interval=0.01, cache_ttl=0.01)
    try:
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b)
        assert client.hget(store.key("svc"), "failures") == b"1"
        assert own_redis_server.pid is not None
        os.kill(own_redis_server.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            fail(b, 2)
            # Frozen well past the deadline of the script the first of them sent.
            time.sleep(max(0.0, frozen + 3 * timeout - time.monotonic()))
        finally:
            os.kill(own_redis_server.pid, signal.SIGCONT)
        assert b.opened
        assert eventually(lambda: store.reachable)
        assert reads_after(client, 3)
        assert b.opened
        assert client.hget(store.key("svc"), "failures") == b"1"  # the late script: nothing
    finally:
        store.close()


# --- which errors are whose -----------------------------------------------------------------


def _errors() -> list[tuple[BaseException, str]]:
    if missing() is not None:
        return []
    rx = redis.exceptions
    return [
        (rx.ConnectionError("Connection refused"), "outage"),
        (rx.TimeoutError("Timeout reading from socket"), "outage"),
        (TimeoutError(), "outage"),
        (rx.BusyLoadingError("Redis is loading the dataset in memory"), "outage"),
        (rx.ResponseError("CLUSTERDOWN The cluster is down"), "outage"),
        (ValueError("I/O operation on closed file."), "outage"),
        (rx.ReadOnlyError("You can't write against a read only replica."), "refused"),
        (
            rx.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
            "refused",
        ),
        (rx.NoScriptError("No matching script."), "refused"),
        (rx.ResponseError("MISCONF Redis is configured to save RDB snapshots"), "refused"),
        (
            rx.ResponseError(
                "Error running script (call to f_0): @user_script:1: -READONLY You can't "
                "write against a read only replica."
            ),
            "refused",
        ),
        (rx.ResponseError("unknown command 'EVALSHA', with args beginning with: "), "refused"),
        (rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), "key"),
        (rx.ResponseError("user_script:1: attempt to perform arithmetic on a nil value"), "key"),
        (rx.MovedError("3999 127.0.0.1:6381"), "key"),
        (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), "key"),
    ]


@pytest.mark.parametrize(("error", "meaning"), _errors(), ids=lambda v: type(v).__name__)
def test_each_error_is_told_apart(error: BaseException, meaning: str) -> None:
    """Connection-level errors are outages, refusals to run or write are write outages
    (Redis 6's quoted codes included), and what Redis says of one key is that key's."""
    from resilient.stores import redis as store_module

    kinds = {
        "outage": store_module._OUTAGE,
        "refused": store_module._REFUSED,
        "key": store_module._KEY,
    }
    assert store_module._kind_of(error) == kinds[meaning]

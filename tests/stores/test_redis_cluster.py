"""RedisStore and AsyncRedisStore on a real Redis Cluster (3 masters, 3 replicas): the
URL form and client forms, one slot per breaker whatever its name, pub/sub across nodes.

Two stores with one prefix stand for two processes of a fleet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis_cluster import RedisCluster, missing
from redis_server import boom, eventually, fail, stores_on, unique_prefix
from strategies import BoomError

from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError

if missing() is None:
    import redis.asyncio.cluster as acluster
    import redis.cluster as rcluster
    from redis.crc import key_slot

    from resilient.stores.redis import AsyncRedisStore, RedisStore

THREE = BreakerConfig(failure_threshold=3, reset_timeout=30.0)
WAIT = 5.0  # seconds a test waits for something that should take milliseconds
ODD_NAMES = ["}svc", "{", "}", "{}", "a{b}c", "ünïcødé", "%7D", "svc"]


@pytest.fixture
def make(redis_cluster: RedisCluster) -> Iterator[Callable[..., Any]]:
    """``make(**options)``: a store on the shared cluster; one prefix per test, closed at
    the end."""
    yield from stores_on(redis_cluster.url)


def test_a_cluster_url_shares_breakers_across_processes(make: Callable[..., Any]) -> None:
    """redis+cluster:// discovers the cluster from one node; breakers on every master
    open for a second store through the cluster (written, and announced over pub/sub)."""
    here, there = make(), make()
    names = [f"svc{i}" for i in range(12)]  # spread over the three masters
    for name in names:
        fail(CircuitBreaker(name, THREE, store=here), 3)
    assert here.reachable
    assert eventually(lambda: all(there.get(n).mode is BreakerMode.OPEN for n in names))
    assert there.reachable
    assert len({key_slot(here.key(n).encode()) for n in names}) > 3


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_keep_every_key_on_one_slot(make: Callable[..., Any], name: str) -> None:
    """A breaker named with braces, percent signs or non-ASCII letters keeps all its keys
    on one slot: with trip="local" (two keys per script) it still opens the fleet."""
    a, b = make(trip="local", trip_quorum=2), make(trip="local", trip_quorum=2)
    assert len({key_slot(k.encode()) for k in a.keys(name)}) == 1
    fail(CircuitBreaker(name, THREE, store=a), 3)
    fail(CircuitBreaker(name, THREE, store=b), 3)
    assert a.reachable
    assert b.reachable
    assert eventually(lambda: a.get(name).mode is BreakerMode.OPEN)


def test_odd_names_never_share_a_key(make: Callable[..., Any]) -> None:
    """Names that differ give keys that differ, even once percent-encoded."""
    store = make()
    names = [*ODD_NAMES, "%", "%25", "%7D}", "}%7D", ""]
    assert len({store.key(n) for n in names}) == len(names)


def test_a_cluster_client_is_accepted(
    make: Callable[..., Any],
    redis_cluster: RedisCluster,
) -> None:
    """RedisStore(redis.cluster.RedisCluster(...)) uses the cluster (with its own
    timeouts: the client given is left alone)."""
    given = rcluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[1])
    try:
        store = make(url=given)
        b = CircuitBreaker("svc", THREE, store=store)
        fail(b, 3)
        assert store.reachable
        raw: Any = given.hget(store.key("svc"), "mode")
        assert raw == b"open"
    finally:
        given.close()


async def test_an_asyncio_cluster_url_and_client_are_used_in_the_loop(
    make: Callable[..., Any],
    redis_cluster: RedisCluster,
) -> None:
    """AsyncRedisStore on a redis+cluster:// URL, and on a redis.asyncio cluster client,
    applies transitions in the event loop; a blocking store of the fleet sees them."""
    given = acluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[2])
    watcher = make()
    try:
        for i, target in enumerate((redis_cluster.url, given)):
            store = make(AsyncRedisStore, url=target)
            assert await store.aconnect()
            b = CircuitBreaker(f"async{i}", THREE, store=store)
            assert store.listening.wait(WAIT)  # a blocking twin listens, never the asyncio client
            for _ in range(3):
                with pytest.raises(BoomError):
                    await b.acall(_aboom)
            assert b.mode is BreakerMode.OPEN
            assert store.reachable
            watcher.get(f"async{i}")
            ok = await asyncio.to_thread(
                eventually, lambda i=i: watcher.get(f"async{i}").mode is BreakerMode.OPEN
            )
            assert ok
            await store.aclose()
    finally:
        await given.aclose()


async def _aboom() -> None:
    raise BoomError


def test_a_listener_subscribes_once_on_one_node(
    make: Callable[..., Any],
    redis_cluster: RedisCluster,
) -> None:
    """The listener of a cluster store holds one subscription, on one node, for the
    whole cluster."""
    store = make()
    CircuitBreaker("svc", THREE, store=store)
    assert store.listening.wait(WAIT)
    client = redis_cluster.client()
    try:

        def subscribers() -> int:
            total = 0
            for node in client.get_nodes():
                counts = node.redis_connection.execute_command(
                    "PUBSUB NUMSUB", f"{store.prefix}:events"
                )
                total += sum(int(count) for _, count in counts)
            return total

        assert eventually(lambda: subscribers() == 1)
    finally:
        client.close()


# --- a node frozen or killed -------------------------------------------------------------


@pytest.mark.realtime
def test_a_frozen_master_stalls_no_caller_beyond_the_timeout(
    make: Callable[..., Any],
    redis_cluster: RedisCluster,
) -> None:
    """With the master of a breaker's slot frozen (SIGSTOP), no call waits longer than
    the store's timeout (plus scheduling slack) and no Redis error reaches a caller."""
    store = make(timeout=0.05)
    b = CircuitBreaker("svc", BreakerConfig(failure_threshold=10**9), store=store)
    assert store.listening.wait(WAIT)
    victim = redis_cluster.master_of(store.key("svc"))
    worst, calls = 0.0, 0
    redis_cluster.freeze(victim)
    try:
        deadline = time.monotonic() + 0.6  # shorter than the node timeout: no failover
        while time.monotonic() < deadline:
            started = time.perf_counter()
            fail(b)
            worst = max(worst, time.perf_counter() - started)
            calls += 1
    finally:
        redis_cluster.thaw(victim)
    redis_cluster.wait_healthy()
    assert calls > 10
    assert worst < 0.05 + 0.015
    assert not store.reachable
    assert eventually(lambda: store.reachable, timeout=10)


@pytest.mark.cluster
def test_a_killed_master_loses_no_open_state_and_the_fleet_reconverges(
    own_redis_cluster: RedisCluster,
) -> None:
    """kill -9 of the master holding an open breaker: callers see only the breaker's own
    rejections (and a closed breaker on that slot, its own failures, never waiting past
    the timeout), the promoted replica still holds the open state, every store is back
    on Redis within a retry interval of the failover, and a reset reaches every store."""
    url = own_redis_cluster.url
    prefix = unique_prefix()
    retry = 0.5
    a = RedisStore(url, prefix=prefix, retry_interval=retry)
    b = RedisStore(url, prefix=prefix, retry_interval=retry)
    c = RedisStore(url, prefix=unique_prefix(), retry_interval=retry)
    try:
        here = CircuitBreaker("svc", THREE, store=a)
        there = CircuitBreaker("svc", THREE, store=b)
        # The same name under another prefix: the same slot, a breaker that stays closed.
        closed = CircuitBreaker("svc", BreakerConfig(failure_threshold=10**9), store=c)
        fail(closed)
        assert c.reachable
        fail(here, 3)
        assert eventually(lambda: b.get("svc").mode is BreakerMode.OPEN)
        victim = own_redis_cluster.master_of(a.key("svc"))
        assert own_redis_cluster.wait_replicated(victim)  # the kill loses no write
        killed = time.monotonic()
        own_redis_cluster.kill(victim)
        errors: list[BaseException] = []
        failover = back = None
        worst = 0.0
        while time.monotonic() - killed < 15:
            for breaker in (here, there):
                try:
                    breaker.call(boom)
                except CircuitOpenError:
                    pass
                except BaseException as error:  # any other error is a defect
                    errors.append(error)
            started = time.perf_counter()
            with pytest.raises(BoomError):
                closed.call(boom)
            worst = max(worst, time.perf_counter() - started)
            if failover is None and own_redis_cluster.serves(a.key("svc")):
                failover = time.monotonic() - killed
            if failover is not None and a.reachable and b.reachable:
                back = time.monotonic() - killed
                break
            time.sleep(0.01)
        assert errors == []
        assert worst < 0.05 + 0.015
        assert failover is not None
        assert back is not None
        assert back - failover <= retry + 0.5, (failover, back)
        fresh = RedisStore(url, prefix=prefix)
        try:
            # Its first round trip may outlast its timeout on a busy machine: it then
            # starts in an outage, where a breaker it never read is closed. Read once
            # it uses Redis.
            assert eventually(lambda: fresh.reachable)
            assert fresh.get("svc").mode is BreakerMode.OPEN  # kept by the promoted replica
        finally:
            fresh.close()
        here.reset()
        assert eventually(lambda: b.get("svc").mode is BreakerMode.CLOSED)
    finally:
        a.close()
        b.close()
        c.close()


def _connected(node_client: Any) -> list[Any]:
    """The connections of one node's client that hold an open socket."""
    pool = node_client.connection_pool
    held = [*pool._available_connections, *pool._in_use_connections]
    return [c for c in held if getattr(c, "_sock", None) is not None]


def test_closing_a_store_closes_the_connections_of_a_node_a_failover_dropped(
    redis_cluster: RedisCluster,
) -> None:
    """A node the cluster client's layout no longer lists (as after a failover) keeps
    no open connection once the store is closed."""
    store = RedisStore(redis_cluster.url, prefix=unique_prefix())
    manager = store._sync.client().nodes_manager
    node = manager.get_node_from_slot(key_slot(store.key("svc").encode()))
    node_client = node.redis_connection
    node_client.ping()
    assert _connected(node_client)
    del manager.nodes_cache[node.name]  # what a refresh after a failover leaves out
    manager.startup_nodes.pop(node.name, None)
    store.close()
    assert _connected(node_client) == []


def test_a_closed_store_opens_no_cluster_client_again(redis_cluster: RedisCluster) -> None:
    """After close, a last use of the store (a listener finishing its round) makes no
    new cluster client, whose connections no one would close."""
    store = RedisStore(redis_cluster.url, prefix=unique_prefix())
    store.get("svc")
    store.close()
    assert store.get("other").mode is BreakerMode.CLOSED
    assert store._sync._client is None


def test_a_sentinel_client_is_refused_with_a_reason() -> None:
    """A client managed by Sentinel (master_for) raises ConfigError naming ``url``: the
    store would not follow Sentinel's failover."""
    from redis.sentinel import Sentinel

    from resilient.exceptions import ConfigError

    client = Sentinel([("127.0.0.1", 1)]).master_for("mymaster")
    with pytest.raises(ConfigError, match="Sentinel") as raised:
        RedisStore(client, check=False)
    assert raised.value.parameter == "url"


@pytest.mark.realtime
async def test_a_frozen_master_stalls_no_async_caller_beyond_the_timeout(
    make: Callable[..., Any],
    redis_cluster: RedisCluster,
) -> None:
    """AsyncRedisStore on a cluster whose master of a breaker's slot is frozen: no call
    waits longer than the timeout (plus scheduling slack), no Redis error reaches it."""
    store = make(AsyncRedisStore)
    assert await store.aconnect()
    b = CircuitBreaker("svc", BreakerConfig(failure_threshold=10**9), store=store)
    assert store.listening.wait(WAIT)
    victim = redis_cluster.master_of(store.key("svc"))
    worst, calls = 0.0, 0
    redis_cluster.freeze(victim)
    try:
        deadline = time.monotonic() + 0.6  # shorter than the node timeout: no failover
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with pytest.raises(BoomError):
                await b.acall(_aboom)
            worst = max(worst, time.perf_counter() - started)
            calls += 1
    finally:
        redis_cluster.thaw(victim)
    await asyncio.to_thread(redis_cluster.wait_healthy)
    assert calls > 10
    assert worst < 0.05 + 0.015
    assert await asyncio.to_thread(eventually, lambda: store.reachable, 10)
    await store.aclose()


def test_a_dead_master_costs_a_caller_one_attempt_and_no_rediscovery(
    make: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call whose slot's master refuses connections tries that master once and fails
    at once: no retry, and learning the cluster again is left to the listener (never
    done on the caller's thread)."""
    import socket
    import threading

    store = make(retry_interval=60.0)  # the listener stays out of the way meanwhile
    b = CircuitBreaker("svc", BreakerConfig(failure_threshold=10**9), store=store)
    fail(b)
    assert store.listening.wait(WAIT)
    assert store.reachable
    client = store._sync.client()
    node = client.get_node_from_key(store.key("svc"))
    pool = client.get_redis_connection(node).connection_pool
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = int(probe.getsockname()[1])
    # The master's connections now go to a dead port (as after kill -9 of it).
    monkeypatch.setitem(pool.connection_kwargs, "port", dead_port)
    pool.reset()
    attempts: list[object] = []
    get_connection = pool.get_connection

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        return get_connection(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counted)
    rediscovered: list[str] = []
    initialize = client.nodes_manager.initialize

    def noted(*args: Any, **kwargs: Any) -> Any:
        rediscovered.append(threading.current_thread().name)
        return initialize(*args, **kwargs)

    monkeypatch.setattr(client.nodes_manager, "initialize", noted)
    try:
        started = time.perf_counter()
        fail(b)
        took = time.perf_counter() - started
        assert not store.reachable
        assert len(attempts) == 1, attempts
        assert threading.current_thread().name not in rediscovered
        assert took < 0.05 + 0.015
    finally:
        monkeypatch.undo()
        pool.reset()

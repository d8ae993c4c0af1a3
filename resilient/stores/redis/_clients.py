"""The clients the Redis stores talk through: one server or a Redis Cluster, every
command bounded by the store's timeout and never retried by the client itself."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
import redis.cluster as rcluster
import redis.connection
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...exceptions import ConfigError

# No CLIENT SETINFO when a connection opens: two round trips less for each new connection
# (redis-py 5 to 7 spell it lib_name=None, later versions driver_info=None).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


_URLS = "a redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// URL"


_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


# Connection settings a client of one kind may pass on to one of another kind.
_PORTABLE = (
    "username",
    "password",
    "client_name",
    "credential_provider",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_check_hostname",
)


def _options(timeout: float) -> dict[str, Any]:
    """Connection settings under which a command gives up after ``timeout``, untried."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        **_NO_SETINFO,
    }


def _sync_client(target: object, timeout: float) -> Any:
    """A client whose every command gives up after ``timeout`` and is never retried."""
    options: dict[str, Any] = {**_options(timeout), "retry_on_timeout": False}
    if isinstance(target, str):
        try:
            if target.startswith(_CLUSTER_SCHEMES):
                return _Cluster.from_url(target, timeout)
            return redis.Redis.from_url(target, **options)
        except (ValueError, TypeError) as error:
            raise ConfigError("url", _redacted(target), f"{_URLS} ({error})") from None
    if isinstance(target, rcluster.RedisCluster | acluster.RedisCluster):
        return _Cluster.like(target, timeout)
    if not isinstance(target, redis.Redis | aredis.Redis) and not _client_like(target):
        raise ConfigError("url", target, f"{_URLS}, or a redis.Redis client")
    pool = getattr(target, "connection_pool", None)
    if pool is None:
        return target  # a test's stand-in: its own timeouts apply
    if "Sentinel" in type(pool).__name__:
        raise ConfigError(
            "url",
            target,
            f"{_URLS}, or a redis.Redis client not managed by Sentinel (Sentinel's "
            "failover is not followed: give the master's URL, or use Redis Cluster)",
        )
    kwargs = {**pool.connection_kwargs, **options}
    connection_class = getattr(redis, pool.connection_class.__name__, redis.Connection)
    if not isinstance(target, redis.Redis):  # an asyncio client: the sync twin of its class
        allowed = ("host", "port", "db", "path", *_PORTABLE)
        kwargs = {k: v for k, v in kwargs.items() if k in allowed or k in options}
    else:
        connection_class = pool.connection_class
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs)
    )


def _plain_url(url: str) -> str:
    """``redis+cluster://...`` as the ``redis://...`` URL redis-py's cluster client reads."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.replace('+cluster', '')}://{rest}"


class _Cluster:
    """A blocking Redis Cluster client, made on first use (a store can be made while the
    cluster is down: it starts in an outage), with the store's timeout on every node
    and no retries of its own (the store decides what a failure means).

    Scripts run with ``EVALSHA`` on the node owning their keys' slot (``EVAL`` the first
    time a node has not seen them). Subscriptions go to any live node, replicas
    included: a plain ``PUBLISH`` reaches every node of a cluster.

    Every node client the cluster client makes has its connections closed with it, or as
    soon as its node leaves the cluster's layout (redis-py closes only the nodes of the
    layout it knows last, and leaves their pools' sockets to the collector). Once closed,
    no client is made again (a listener finishing its last round would otherwise open
    one).
    """

    def __init__(self, make: Any, where: str) -> None:
        self._make = make
        self.where = where
        self._client: Any = None
        self._lock = threading.Lock()
        self._turn = 0  # which node the next subscription tries first
        self._closed = False
        self._nodes: dict[int, Any] = {}  # the node clients made, by id, until closed

    @classmethod
    def from_url(cls, url: str, timeout: float) -> _Cluster:
        plain = _plain_url(url)
        parsed = redis.connection.parse_url(plain)  # type: ignore[no-untyped-call]
        where = f"cluster {parsed.get('host', '?')}:{parsed.get('port', 6379)}"

        def make() -> Any:
            return rcluster.RedisCluster.from_url(
                plain, require_full_coverage=False, **_options(timeout)
            )

        return cls(make, where)

    @classmethod
    def like(cls, given: Any, timeout: float) -> _Cluster:
        """The blocking twin of a cluster client (sync or asyncio): its nodes and
        credentials, this store's timeouts."""
        manager = getattr(given, "nodes_manager", None)
        # An asyncio client knows no node before its first command; its startup nodes
        # are its own (redis-py 6 and later) or its nodes manager's (redis-py 5).
        startup: list[Any] = []
        for holder in (given, manager):
            found = getattr(holder, "startup_nodes", None) or []
            startup.extend(found.values() if isinstance(found, dict) else found)
        nodes = list(dict.fromkeys((n.host, n.port) for n in [*given.get_nodes(), *startup]))
        kwargs = getattr(manager, "connection_kwargs", None) or getattr(
            given, "connection_kwargs", {}
        )
        portable = {k: v for k, v in kwargs.items() if k in _PORTABLE and v is not None}
        where = f"cluster {nodes[0][0]}:{nodes[0][1]}" if nodes else "cluster"

        def make() -> Any:
            startup = [rcluster.ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
            return rcluster.RedisCluster(
                startup_nodes=startup,
                require_full_coverage=False,
                **portable,
                **_options(timeout),
            )

        return cls(make, where)

    def client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._closed:
                    raise rx.ConnectionError("the store is closed")
                if self._client is None:
                    self._client = self._tracked(self._make())
                client = self._client
        return client

    def _tracked(self, client: Any) -> Any:
        """``client``, whose node clients, those it has and those it makes from now on,
        are kept (in ``_nodes``) to be closed."""
        manager = client.nodes_manager
        nodes = self._nodes
        for node in [*manager.nodes_cache.values(), *manager.startup_nodes.values()]:
            if node.redis_connection is not None:
                nodes[id(node.redis_connection)] = node.redis_connection
        make = manager.create_redis_node

        def create_redis_node(*args: Any, **kwargs: Any) -> Any:
            made = make(*args, **kwargs)
            nodes[id(made)] = made
            return made

        manager.create_redis_node = create_redis_node
        return client

    def _close_dropped(self, client: Any) -> None:
        """Close the node clients of nodes no longer in ``client``'s layout."""
        manager = client.nodes_manager
        live = {
            id(node.redis_connection)
            for node in [*manager.nodes_cache.values(), *manager.startup_nodes.values()]
        }
        for key, node in list(self._nodes.items()):
            if key not in live and self._nodes.pop(key, None) is not None:
                _close_node(node)

    def register_script(self, source: str) -> _ClusterScript:
        return _ClusterScript(self, source)

    def pipeline(self, transaction: bool = False) -> _NodePipeline:
        return _NodePipeline(self)

    def get(self, key: str) -> Any:
        return self.on_node(key, "GET", key)

    def on_node(self, key: str, *command: Any) -> Any:
        """``command`` sent straight to the master owning ``key``'s slot: one round trip
        bounded by the store's timeout. A failure is raised at once; learning the
        cluster again is the listener's job (``refresh``), never the caller's (redis-py
        5 rediscovers the cluster and retries on the caller's thread). A redirection
        (slots moved) goes through the cluster client, which follows it and learns
        the new owner."""
        real = self.client()
        node = real.get_node_from_key(key)
        connection = node.redis_connection or real.get_redis_connection(node)
        try:
            return connection.execute_command(*command)
        except (rx.MovedError, rx.AskError, rx.TryAgainError):
            return real.execute_command(*command)

    def subscribe(self, channel: str) -> Any:
        """A subscription to ``channel`` on the first node that takes it, starting from a
        different node each time (a dead or frozen node is skipped)."""
        client = self.client()
        nodes = client.get_nodes()
        error: BaseException = rx.ConnectionError("no cluster node known")
        for i in range(len(nodes)):
            node = nodes[(self._turn + i) % len(nodes)]
            connection = node.redis_connection
            if connection is None:
                continue
            pubsub = client.pubsub(node=node, ignore_subscribe_messages=True)
            try:
                # Straight to the node: a frozen one fails here, and the cluster client
                # does not go and rediscover the cluster over one dead node.
                connection.ping()
                pubsub.subscribe(channel)
            except Exception as failed:
                error = failed
                _close_quietly(pubsub)
                continue
            self._turn += i + 1
            return pubsub
        self._turn += 1
        raise error

    def refresh(self) -> None:
        """Learn again which node serves which slot (after a failover), quietly."""
        client = self._client
        if client is None:
            return
        try:
            client.nodes_manager.initialize()
        except Exception:
            pass  # the next command finds out, and says why
        self._close_dropped(client)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            nodes = list(self._nodes.values())
            self._nodes.clear()
        if client is not None:
            client.close()
        for node in nodes:
            _close_node(node)


class _NodePipeline:
    """Commands on keys, sent in one pipeline per master owning their slots (each round
    trip bounded by the store's timeout, never retried; no ``ClusterPipeline``, whose
    redis-py 5 rediscovers the cluster and retries, and whose redis-py 6.0 to 6.2 warn
    on every use). A reply saying a slot moved is asked again through the cluster
    client, which follows the redirection."""

    def __init__(self, cluster: _Cluster) -> None:
        self.cluster = cluster
        self.commands: list[tuple[Any, ...]] = []

    def hmget(self, key: str, fields: Any) -> None:
        self.commands.append(("HMGET", key, *fields))

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        real = self.cluster.client()
        commands = self.commands
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, command in enumerate(commands):
            node = real.get_node_from_key(command[1])
            groups.setdefault(node.name, (node, []))[1].append(i)
        replies: list[Any] = [None] * len(commands)
        for node, positions in groups.values():
            connection = node.redis_connection or real.get_redis_connection(node)
            pipe = connection.pipeline(transaction=False)
            for i in positions:
                pipe.execute_command(*commands[i])
            for i, reply in zip(positions, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, rx.MovedError | rx.AskError | rx.TryAgainError):
                    try:
                        reply = real.execute_command(*commands[i])
                    except Exception as error:
                        reply = error
                if raise_on_error and isinstance(reply, Exception):
                    raise reply
                replies[i] = reply
        return replies


class _ClusterScript:
    """A Lua script run on the cluster node owning its keys' slot."""

    def __init__(self, cluster: _Cluster, source: str) -> None:
        self.cluster = cluster
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        if not keys:
            return self.cluster.client().evalsha(self.sha, 0, *args)
        on_node = self.cluster.on_node
        try:
            return on_node(keys[0], "EVALSHA", self.sha, len(keys), *keys, *args)
        except rx.NoScriptError:  # this node has not seen it yet: send it whole once
            return on_node(keys[0], "EVAL", self.source, len(keys), *keys, *args)


RELEARN_SECONDS = 0.1  # an asyncio cluster client learns the slots again at most this often


class AsyncClusterScript:
    """A Lua script run by an asyncio cluster client, sent straight to the master owning
    its keys' slot: a failure is raised at once. Through the cluster client, one node's
    timeout makes redis-py 5 close every node's connections and learn the cluster again,
    which stalls the breakers on healthy masters too. A redirection (slots moved) goes
    through the cluster client, which follows it.

    ``owner(key)`` names the master the store believes serves ``key`` (``""``: not known).
    The store's listener learns a failover (it asks the cluster again while a master is
    down); a call whose client still points elsewhere has the slots learnt again before
    it is sent, at most every ``RELEARN_SECONDS``. Learning the slots takes the event loop
    for a while (16,384 slots), so it is done once per failover, never in the background
    of other calls, whose timeouts it would eat into."""

    def __init__(
        self,
        client: acluster.RedisCluster,
        source: str,
        owner: Callable[[str], str] = lambda key: "",
    ) -> None:
        self.client = client
        self.owner = owner
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._relearning: asyncio.Task[None] | None = None
        self._relearnt = -RELEARN_SECONDS

    async def __call__(self, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        cluster = self.client
        if not keys:
            return await cluster.execute_command("EVALSHA", self.sha, 0, *args)
        node = cluster.get_node_from_key(keys[0])
        expected = self.owner(keys[0])
        if expected and node is not None and node.name != expected:  # a failover it missed
            self._relearn()
            relearning = self._relearning
            if relearning is not None and not relearning.done():
                # Waits without taking on the relearning's outcome: its failure or its
                # cancellation (the store closing) is not this call's.
                await asyncio.wait({relearning})
            node = cluster.get_node_from_key(keys[0])
        assert node is not None  # None is for a missing replica only
        try:
            try:
                return await node.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
            except rx.NoScriptError:  # this node has not seen it yet: send it whole once
                return await node.execute_command("EVAL", self.source, len(keys), *keys, *args)
        except (rx.MovedError, rx.AskError, rx.TryAgainError):
            return await cluster.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    def _relearn(self) -> None:
        now = time.monotonic()
        running = self._relearning is not None and not self._relearning.done()
        if running or now - self._relearnt < RELEARN_SECONDS:
            return
        self._relearnt = now
        task = asyncio.get_running_loop().create_task(self.client.nodes_manager.initialize())
        task.add_done_callback(_seen)
        self._relearning = task

    def cancel(self) -> None:
        """Stop a relearning still under way (the store is closing)."""
        if self._relearning is not None:
            self._relearning.cancel()


def _seen(task: asyncio.Task[None]) -> None:
    """Mark a relearning's failure as seen (the next call that needs one tries again)."""
    if not task.cancelled():
        task.exception()


def _client_like(target: object) -> bool:
    """Whether ``target`` can stand for a client (a cluster client, a test's stand-in)."""
    return all(callable(getattr(target, name, None)) for name in ("register_script", "pipeline"))


def _async_client_like(target: object) -> bool:
    """Whether ``target`` can stand for an asyncio client (e.g. an asyncio cluster client)."""
    execute = getattr(target, "execute_command", None)
    return _client_like(target) and inspect.iscoroutinefunction(execute)


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    url = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url, count=1)
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", url)


def _describe(client: Any) -> str:
    """``host:port/db`` of a client, never its password."""
    if isinstance(client, _Cluster):
        return client.where
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    if "host" in kwargs:
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return type(client).__name__


def _close_node(node: Any) -> None:
    """Close a cluster node's client and its connections, quietly (its ``close`` leaves
    the connections of a pool it was given open)."""
    try:
        node.close()
        node.connection_pool.disconnect()
    except Exception:
        pass


def _close_quietly(pubsub: Any) -> None:
    """Close a subscription that may already be broken."""
    try:
        pubsub.close()
    except Exception:
        pass


def _drop_connections(client: Any, running: bool = False) -> None:
    """Close the sockets of an asyncio client at once, without awaiting its ``aclose``
    (its event loop is closed, or about to be), so nothing is left open for the collector
    to find. ``running``: its loop runs (in this thread), and finishes on its next turn
    what closing a transport leaves to it."""
    pool = getattr(client, "connection_pool", None)
    connections = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
    ]
    if isinstance(client, acluster.RedisCluster):  # each node keeps its own connections
        for node in client.get_nodes():
            connections.extend(getattr(node, "_connections", ()))
        client._initialize = True  # closed: redis-py warns of a client dropped unclosed
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        if writer is None:
            continue
        transport = writer.transport
        try:
            transport.abort()  # marks it closing; on a closed loop it cannot finish the job
        except Exception:
            pass
        # ... so close the socket it still holds (asyncio's own attribute: best effort);
        # a running loop forgets it itself, on its next turn.
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            try:
                sock.close()
                if not running:
                    transport._sock = None
            except Exception:
                pass
        connection._writer = connection._reader = None

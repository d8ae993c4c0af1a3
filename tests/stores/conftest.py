"""The Redis servers the store tests talk to: the session's shared server and cluster
(use a ``unique_prefix()`` for the keys), or ones of a test's own that it may kill."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_cluster import RedisCluster, shared_cluster
from redis_cluster import missing as missing_cluster
from redis_server import RedisServer, free_port, missing, owned, shared_server


@pytest.fixture
def redis_server() -> RedisServer:
    """The shared server; use a ``unique_prefix()`` for the keys."""
    return shared_server()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A server of this test's own, free to be killed and restarted."""
    yield from owned(missing, lambda: RedisServer().start())


@pytest.fixture
def replica_redis_server() -> Iterator[RedisServer]:
    """A read-only replica whose master never answers: reads work, writes get READONLY."""
    yield from owned(
        missing, lambda: RedisServer("--replicaof", "127.0.0.1", str(free_port())).start()
    )


@pytest.fixture
def redis_cluster() -> RedisCluster:
    """The session's cluster; use a ``unique_prefix()`` for the keys, hurt no node."""
    return shared_cluster()


@pytest.fixture
def own_redis_cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own, whose nodes it may freeze or kill."""
    yield from owned(missing_cluster, lambda: RedisCluster().start())

"""A store that cannot be reached or refuses (Redis down or read-only; a read-only
SQLite file): every public Outbox method raises ``OutboxError`` chained to the
store's own error, interrupts still reach the caller, and the background drainer backs
off and goes on."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer, eventually, free_port, missing, owned

from resilient.outbox import Item, Outbox, OutboxError, _outbox
from resilient.testing import FakeClock


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be stopped and started again."""
    yield from owned(missing, lambda: RedisServer().start())


@pytest.fixture
def replica() -> Iterator[RedisServer]:
    """A read-only replica whose master never answers: reads work, writes get READONLY."""
    yield from owned(
        missing, lambda: RedisServer("--replicaof", "127.0.0.1", str(free_port())).start()
    )


def calls(outbox: Outbox) -> dict[str, Callable[[], object]]:
    """Every public method of ``outbox`` that talks to its store, ready to call."""

    async def drain_async() -> None:
        await outbox.drain_async()

    return {
        "enqueue": lambda: outbox.enqueue("a", 1, key="k9"),
        "pending": outbox.pending,
        "dead": outbox.dead,
        "retry_dead": outbox.retry_dead,
        "purge": outbox.purge,
        "purge pending": lambda: outbox.purge(dead=False),
        "refresh_gauges": outbox.refresh_gauges,
        "drain": outbox.drain,
        "drain_async": lambda: asyncio.run(drain_async()),
    }


def with_handlers(outbox: Outbox) -> Outbox:
    outbox.handler("a")(lambda item: None)

    async def deliver(item: Item) -> None:
        return None

    outbox.handler("b")(deliver)
    return outbox


def refused_everywhere(outbox: Outbox, cause: type[BaseException], skip: set[str]) -> None:
    for name, call in calls(outbox).items():
        if name in skip:
            continue
        try:
            call()
        except OutboxError as refused:
            error: BaseException = refused
        else:
            pytest.fail(f"{name} answered instead of raising OutboxError")
        assert isinstance(error.__cause__, cause), name
        assert "could not" in str(error), name


def test_every_method_raises_outbox_error_when_redis_is_unreachable(fake_clock: FakeClock) -> None:
    """Nothing listens at the outbox's Redis: each public method raises OutboxError
    chained to redis-py's ConnectionError, never the raw redis-py error."""
    import redis

    outbox = with_handlers(Outbox(f"redis://127.0.0.1:{free_port()}/0"))
    refused_everywhere(outbox, redis.ConnectionError, skip=set())
    outbox.close()


def test_every_method_raises_outbox_error_when_redis_went_away(
    own_server: RedisServer, fake_clock: FakeClock
) -> None:
    """A Redis that answered, then stopped (a restart, a failover): each public method
    raises OutboxError chained to redis-py's error."""
    import redis

    outbox = with_handlers(Outbox(own_server.url))
    outbox.enqueue("a", 1)
    own_server.stop()
    refused_everywhere(outbox, redis.ConnectionError, skip=set())
    outbox.close()


def test_a_read_only_redis_refuses_writes_with_outbox_error(
    replica: RedisServer, fake_clock: FakeClock
) -> None:
    """A read-only replica (READONLY): every method that writes raises OutboxError chained
    to redis-py's ResponseError; the ones that only read answer."""
    import redis

    outbox = with_handlers(Outbox(replica.url))
    # reading, or finding nothing to change (no dead letter, nothing to purge), works
    answered = {"pending", "dead", "refresh_gauges", "retry_dead", "purge", "purge pending"}
    refused_everywhere(outbox, redis.ResponseError, skip=answered)
    assert outbox.pending() == 0
    assert outbox.dead() == []
    outbox.close()


def test_every_method_raises_outbox_error_when_sqlite_refuses(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A SQLite file that refuses writes: each public method that writes raises
    OutboxError chained to SQLite's error, never the raw sqlite3 error."""
    outbox = with_handlers(Outbox(f"sqlite:///{tmp_path / 'o.db'}"))
    outbox.enqueue("a", 1)
    outbox.enqueue("b", 1)
    backend: Any = outbox._backend
    for durable in (True, False):
        backend._connection(durable=durable).execute("PRAGMA query_only = ON")
    answered = {"pending", "dead", "refresh_gauges"}
    refused_everywhere(outbox, sqlite3.OperationalError, skip=answered)
    backend.close()
    (tmp_path / "o.db").unlink()
    (tmp_path / "o.db").mkdir()  # now not a database at all: reading fails too
    refused_everywhere(outbox, sqlite3.Error, skip={"enqueue"})


def test_an_interrupt_reaches_the_caller_when_the_store_cannot_take_the_item_back(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A KeyboardInterrupt in a handler while the store refuses to take the batch back
    reaches the caller as itself (with a note), not as the store's error; the items wait
    for their leases to end."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'o.db'}", lease=5)
    outbox.handler("a")(lambda item: (_ for _ in ()).throw(KeyboardInterrupt()))
    outbox.enqueue("a", 1)
    outbox.enqueue("a", 2)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OutboxError("the disk went away")

    backend: Any = outbox._backend
    failed = backend.failed
    backend.failed = refuse
    with pytest.raises(KeyboardInterrupt) as raised:
        outbox.drain()
    assert any("the disk went away" in note for note in raised.value.__notes__)
    backend.failed = failed
    seen: list[Any] = []
    outbox.handler("a")(lambda item: seen.append(item.payload))
    assert outbox.drain().delivered == 0  # still leased
    fake_clock.advance(6)
    assert outbox.drain().delivered == 2
    assert seen == [1, 2]
    outbox.close()


def test_the_drainer_backs_off_while_rounds_keep_failing(tmp_path: Path) -> None:
    """The background drainer waits ``poll`` after a failed round, twice as long after
    each further one, at most ``MAX_BACKOFF`` seconds (or ``poll`` when longer)."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'o.db'}", poll=0.5)
    waits = [outbox._backoff_wait(n) for n in range(1, 10)]
    assert waits[:4] == [0.5, 1.0, 2.0, 4.0]
    assert waits[-1] == _outbox.MAX_BACKOFF
    assert outbox._backoff_wait(10_000) == _outbox.MAX_BACKOFF
    slow = Outbox(f"sqlite:///{tmp_path / 'o.db'}", poll=100)
    assert slow._backoff_wait(5) == 100
    outbox.close()
    slow.close()


@pytest.mark.realtime
def test_the_background_drainer_survives_redis_going_away(own_server: RedisServer) -> None:
    """The background drainer outlives a Redis that stops answering (each failed round
    logged and waited out) and delivers what is enqueued once Redis is back."""
    outbox = Outbox(own_server.url, poll=0.01)
    delivered = threading.Event()
    outbox.handler("a")(lambda item: delivered.set())
    failures: list[int] = []
    backoff = outbox._backoff_wait

    def counted(n: int) -> float:
        failures.append(n)
        return backoff(n)

    outbox._backoff_wait = counted  # type: ignore[method-assign]
    outbox.start()
    try:
        own_server.stop()
        assert eventually(lambda: len(failures) >= 2)
        own_server.start()
        outbox.enqueue("a", 1)
        assert delivered.wait(5)
        assert outbox._thread is not None
        assert outbox._thread.is_alive()
    finally:
        outbox.stop()
    assert failures[:2] == [1, 2]
    outbox.close()

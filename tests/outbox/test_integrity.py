"""The outbox keeps every acknowledged item through the awkward moments: a drainer that
finishes after its lease ran out, a disk that fills in the middle of a transaction, and
a store written by the previous version."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from redis_server import shared_server

from resilient.exceptions import CircuitOpenError, ConfigError
from resilient.outbox import Item, Outbox, OutboxError
from resilient.testing import FakeClock

OUTBOX_DB = 15
"""The database of the shared redis-server the outbox tests own (and empty before each)."""


def test_a_drainer_finishing_after_its_lease_ran_out_loses_no_newer_item(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A drainer whose lease ran out while its handler worked (another delivered the item
    meanwhile, and a new item took the freed position) records its delivery without
    touching the new item."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    slow, other = Outbox(url, lease=30), Outbox(url, lease=30)
    delivered: list[Any] = []
    other.handler("a")(lambda item: delivered.append(("other", item.payload)))
    newer: list[str] = []

    def deliver_slowly(item: Item) -> None:
        fake_clock.advance(31)  # the lease runs out while this handler works
        assert other.drain().delivered == 1  # another drainer takes the item over
        newer.append(other.enqueue("a", "newer").key)
        delivered.append(("slow", item.payload))

    slow.handler("a")(deliver_slowly)
    slow.enqueue("a", "first")
    assert slow.drain(limit=1).delivered == 1
    assert other.pending() == 1, "the item enqueued while the slow drainer worked is gone"
    assert other.drain().delivered == 1
    assert delivered == [("other", "first"), ("slow", "first"), ("other", "newer")]
    slow.close()
    other.close()


def test_a_full_disk_during_a_group_enqueue_reports_the_full_disk(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """When the disk fills while an item of a group is stored, the OutboxError says so
    (not that a rollback failed), and the next enqueue after space returns works."""
    box = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    for n in range(3):
        box.enqueue("a", n, key=f"k{n}", group="g")
    connection = box._backend._connection(durable=True)  # type: ignore[attr-defined]
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(OutboxError) as refused:
        box.enqueue("a", "x" * 100_000, key="big", group="g")
    assert str(refused.value).endswith("database or disk is full"), refused.value
    assert str(refused.value.__cause__) == "database or disk is full"
    connection.execute("PRAGMA max_page_count = 1000000")
    assert box.enqueue("a", "x" * 100_000, key="big", group="g").stored
    order: list[str] = []
    box.handler("a")(lambda item: order.append(item.key))
    box.drain()
    assert order == ["k0", "k1", "k2", "big"]
    box.close()


def redis_url() -> str:
    import redis

    url = f"{shared_server().url.rsplit('/', 1)[0]}/{OUTBOX_DB}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def test_redis_items_stored_by_the_previous_version_are_delivered(fake_clock: FakeClock) -> None:
    """Items the previous version stored in Redis (their tickets kept in a hash of their
    own, one of them already read by a drainer that then died) are delivered, a group's
    in order, none lost."""
    import redis

    url = redis_url()
    prefix = "resilient:outbox:{default}:"
    client = redis.Redis.from_url(url)
    stream = prefix + "stream:a"
    client.xgroup_create(stream, "drainers", id="0", mkstream=True)

    def old_item(key: str, position: int, group: str | None) -> None:
        item = {
            "kind": "a",
            "payload": json.dumps(key),
            "created": 1700000000.5,
            "attempts": 0,
            "position": position,
            "error": None,
            "group": group,
        }
        client.hset(prefix + "items", key, json.dumps(item))
        client.incr(prefix + "seq")

    def old_ticket(key: str) -> None:
        entry = client.xadd(stream, {"k": key}).decode()
        client.hset(prefix + "ticket", key, f"a {entry}")

    old_item("read", 1, None)
    old_ticket("read")
    read = client.xreadgroup("drainers", "old-drainer", {stream: ">"}, count=1)
    client.xclaim(  # then the drainer died, a minute ago
        stream, "drainers", "old-drainer", 0, [read[0][1][0][0]], idle=60_000
    )
    old_item("plain", 2, None)
    old_ticket("plain")
    for position, key in ((3, "g1"), (4, "g2")):
        old_item(key, position, "g")
        client.zadd(prefix + "group:g", {key: position})
    old_ticket("g1")
    client.hset(prefix + "busy", "g", "g1")

    box = Outbox(url, lease=30)
    order: list[str] = []
    box.handler("a")(lambda item: order.append(item.key))
    for _ in range(3):
        box.drain()
    assert sorted(order) == ["g1", "g2", "plain", "read"]
    assert order.index("g1") < order.index("g2")
    assert box.pending() == 0
    box.close()
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty outbox: a SQLite file, or a namespace on the shared real redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    return redis_url()


def test_a_revived_item_goes_next_once_the_later_item_under_way_fails(
    url: str, fake_clock: FakeClock
) -> None:
    """A dead letter revived while a later item of its group was under way is delivered
    as soon as that later item fails (which then waits its backoff), not after the later
    item's retries: a group goes in order, on both backends."""
    box = Outbox(url, max_attempts=2)
    order: list[str] = []

    @box.handler("answer")
    def send(item: Item) -> None:
        order.append(item.key)
        if item.key == "a" and order.count("a") <= 2:
            raise ConnectionError("offline")
        if item.key == "b" and order.count("b") == 1:
            assert box.retry_dead() == 1  # "a" comes back while "b" is under way
            raise ConnectionError("offline")

    box.enqueue("answer", 1, key="a", group="g")
    box.enqueue("answer", 2, key="b", group="g")
    box.drain()
    fake_clock.advance(10)
    box.drain()  # "a" is set aside, "b" revives it and fails
    box.drain()
    assert order == ["a", "a", "b", "a"]
    fake_clock.advance(10)
    box.drain()
    assert order == ["a", "a", "b", "a", "b"]
    assert box.pending() == 0
    box.close()


def test_the_drainer_does_not_spin_while_every_kind_waits_for_its_breaker(
    url: str, fake_clock: FakeClock
) -> None:
    """An item whose retry time has come while its kind's breaker is open (the only kind
    this drainer handles) is not ready: the drainer waits (at most ``poll``), not zero
    seconds, until the breaker may close."""
    box = Outbox(url)
    refusal: list[BaseException] = [ConnectionError("offline"), CircuitOpenError("api", 30.0)]

    @box.handler("answer")
    def send(item: Item) -> None:
        raise refusal.pop(0)

    box.enqueue("answer", 1, key="a1")  # fails, to be tried again in about 1 s
    box.enqueue("answer", 2, key="a2")  # finds the breaker open: the kind waits 30 s
    box.drain()
    fake_clock.advance(5)  # "a1" is due; its kind is still paused
    assert box._idle_wait() == box.poll
    fake_clock.advance(30)
    assert box._idle_wait() == 0.0
    box.close()


@pytest.mark.parametrize(
    "url", ["redis://localhost:abc/0", "redis://localhost:6379/0?socket_timeout=x"]
)
def test_a_redis_url_redis_py_cannot_read_is_a_config_error(url: str) -> None:
    """A Redis URL with a port or option redis-py cannot read is refused at construction
    as a ConfigError naming ``url``, not a bare ValueError."""
    with pytest.raises(ConfigError) as refused:
        Outbox(url)
    assert refused.value.parameter == "url"


@pytest.mark.realtime
def test_a_drainer_still_busy_when_stop_returned_ends_after_start_is_called_again(
    tmp_path: Path,
) -> None:
    """``stop()`` that gave up waiting for a delivery under way, then ``start()``: the old
    drainer thread still ends after that delivery, leaving one drainer, not two."""
    box = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    entered, release = threading.Event(), threading.Event()

    @box.handler("a")
    def send(item: Item) -> None:
        entered.set()
        release.wait(5)

    box.enqueue("a", 1)
    box.start()
    old = box._thread
    assert old is not None
    assert entered.wait(5)
    box.stop(timeout=0.01)  # gives up: the delivery is still under way
    box.start()
    release.set()
    old.join(5)
    assert not old.is_alive(), "the stopped drainer goes on beside the new one"
    box.close()


@pytest.mark.realtime
def test_stop_ends_the_drainer_after_the_delivery_under_way(tmp_path: Path) -> None:
    """``stop()`` lets the background drainer finish the delivery under way and deliver
    nothing more, however many items wait: the rest stay pending, ready for the next."""
    box = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    entered, release = threading.Event(), threading.Event()
    delivered: list[int] = []

    @box.handler("a")
    def send(item: Item) -> None:
        entered.set()
        release.wait(5)
        delivered.append(item.payload)

    for n in range(3):
        box.enqueue("a", n)
    box.start()
    thread = box._thread
    assert thread is not None
    assert entered.wait(5)
    box.stop(timeout=0.01)
    release.set()
    thread.join(5)
    assert delivered == [0]
    assert box.pending() == 2
    assert box.drain().delivered == 2  # given back at once, not left leased
    box.close()


def test_threads_that_ended_leave_no_sqlite_connection_open(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """Enqueuing from many short-lived threads (a thread per request) keeps a bounded
    number of SQLite connections open: those of ended threads are closed."""
    box = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    for n in range(40):
        thread = threading.Thread(target=box.enqueue, args=("a", n))
        thread.start()
        thread.join()
    assert box.pending() == 40
    backend: Any = box._backend
    assert len(backend._connections) <= 3, len(backend._connections)
    box.close()

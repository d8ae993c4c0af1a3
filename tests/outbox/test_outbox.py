"""The SQLite outbox: work stored before it is done, delivered later at least once, in
order within a group, set aside when it keeps failing, and never lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from redis_server import shared_server

import resilient as rs
from resilient import DegradationLevel, DegradationService, Feature
from resilient.asgi import HealthApp
from resilient.exceptions import CircuitOpenError, ConfigError
from resilient.outbox import Deferred, Item, Outbox, OutboxError
from resilient.testing import FakeClock

OUTBOX_DB = 15
"""The database of the shared redis-server the outbox tests own (and empty before each)."""


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty outbox: a SQLite file, or a namespace on the shared real redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    import redis

    url = f"{shared_server().url.rsplit('/', 1)[0]}/{OUTBOX_DB}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def box(url: str, fake_clock: FakeClock) -> Any:
    with Outbox(url, max_attempts=3) as outbox:
        yield outbox


def test_an_enqueued_item_is_on_disk_when_enqueue_returns(url: str) -> None:
    """A second outbox on the same file (a restarted process) sees the item at once."""
    first = Outbox(url)
    receipt = first.enqueue("answer", {"student": "ana", "value": 42}, group="ana")
    assert isinstance(receipt, Deferred)
    assert receipt.stored
    restarted = Outbox(url)
    seen: list[Any] = []
    restarted.handler("answer")(lambda item: seen.append((item.key, item.payload, item.group)))
    assert restarted.drain().delivered == 1
    assert seen == [(receipt.key, {"student": "ana", "value": 42}, "ana")]
    assert first.pending() == 0
    first.close()
    restarted.close()


def test_the_same_key_is_stored_once(box: Outbox) -> None:
    """Enqueuing a key twice stores one item; the second receipt says so."""
    one = box.enqueue("answer", 1, key="ana-q1")
    two = box.enqueue("answer", 2, key="ana-q1")
    assert (one.stored, two.stored) == (True, False)
    assert one.position == two.position
    assert box.pending() == 1


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"kind": "", "payload": 1}, "kind"),
        ({"kind": "a b", "payload": 1}, "kind"),
        ({"kind": "k", "payload": {1, 2}}, "payload"),
        ({"kind": "k", "payload": float("nan")}, "payload"),
        ({"kind": "k", "payload": 1, "key": ""}, "key"),
        ({"kind": "k", "payload": 1, "group": 7}, "group"),
    ],
)
def test_bad_items_are_refused_before_anything_is_stored(
    box: Outbox, arguments: dict[str, Any], parameter: str
) -> None:
    """A payload that is not JSON, or a bad kind, key or group, is a ConfigError naming
    it, and nothing is stored."""
    with pytest.raises(ConfigError) as refused:
        box.enqueue(**arguments)
    assert refused.value.parameter == parameter
    assert box.pending() == 0


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"url": "postgres://x"}, "url"),
        ({"url": "sqlite:///"}, "url"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"lease": 0}, "lease"),
        ({"poll": -1}, "poll"),
        ({"poll": 1e10}, "poll"),  # more than a thread can wait: the drainer would die
        ({"lease": 1e300}, "lease"),
        ({"batch": 0}, "batch"),
        ({"synchronous": "OFF"}, "synchronous"),
        ({"backoff": 3}, "backoff"),
    ],
)
def test_bad_settings_are_refused_at_construction(
    tmp_path: Path, arguments: dict[str, Any], parameter: str
) -> None:
    """Each bad setting is a ConfigError naming the parameter."""
    arguments.setdefault("url", f"sqlite:///{tmp_path / 'o.db'}")
    with pytest.raises(ConfigError) as refused:
        Outbox(**arguments)
    assert refused.value.parameter == parameter


def test_a_group_is_delivered_in_order_and_does_not_hold_up_others(
    box: Outbox, fake_clock: FakeClock
) -> None:
    """While the head of group ``ana`` keeps failing, ``ana``'s later items wait and
    group ``ben`` is delivered; once it succeeds, ``ana`` follows in order."""
    delivered: list[Any] = []
    failing = {"ana-1"}

    @box.handler("answer")
    def send(item: Item) -> None:
        if item.key in failing:
            raise ConnectionError("offline")
        delivered.append(item.key)

    for key, group in [("ana-1", "ana"), ("ana-2", "ana"), ("ben-1", "ben"), ("ben-2", "ben")]:
        box.enqueue("answer", key, key=key, group=group)
    box.drain()
    assert delivered == ["ben-1", "ben-2"]
    failing.clear()
    box.drain()
    assert delivered == ["ben-1", "ben-2"]  # ana-1 waits out its backoff
    fake_clock.advance(2)
    box.drain()
    assert delivered == ["ben-1", "ben-2", "ana-1", "ana-2"]


def test_a_failing_item_waits_its_backoff_then_becomes_a_dead_letter(
    box: Outbox, fake_clock: FakeClock
) -> None:
    """Each failure waits ``backoff.delay(n)``; after ``max_attempts`` the item is a dead
    letter with its last error; ``retry_dead`` brings it back with fresh attempts."""
    calls: list[float] = []

    @box.handler("answer")
    def send(item: Item) -> None:
        calls.append(fake_clock.monotonic())
        raise ConnectionError(f"offline at attempt {item.attempts + 1}")

    box.enqueue("answer", "x", key="k")
    for _ in range(10):
        box.drain()
        fake_clock.advance(0.5)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.8  # about 1 s (jitter ±20 %)
    assert calls[2] - calls[1] >= 1.6  # about 2 s
    [dead] = box.dead()
    assert (dead.key, dead.attempts) == ("k", 3)
    assert "offline at attempt 3" in dead.error
    assert box.pending() == 0
    assert box.retry_dead() == 1
    assert box.pending() == 1
    assert box.dead() == []


def test_an_open_breaker_pauses_its_kind_without_using_attempts(
    box: Outbox, fake_clock: FakeClock
) -> None:
    """A handler's open breaker is not the item's fault: the kind waits ``retry_after``
    with attempts unchanged, and other kinds keep going."""
    opened = [True]
    tries: list[str] = []

    @box.handler("answer")
    def send(item: Item) -> None:
        tries.append(item.key)
        if opened[0]:
            raise CircuitOpenError("grading-api", 30.0)

    other: list[str] = []
    box.handler("log")(lambda item: other.append(item.key))
    for n in range(5):
        box.enqueue("answer", n, key=f"a{n}")
    box.enqueue("log", 0, key="l0")
    drained = box.drain()
    assert tries == ["a0"]  # the rest of the kind waits for the breaker
    assert other == ["l0"]
    assert (drained.failed, drained.dead) == (0, 0)
    fake_clock.advance(29)
    box.drain()
    assert tries == ["a0"]
    opened[0] = False
    fake_clock.advance(1)
    box.drain()
    assert tries == ["a0", "a0", "a1", "a2", "a3", "a4"]
    assert box.dead() == []


def test_an_interrupt_in_a_handler_propagates_and_loses_nothing(box: Outbox) -> None:
    """KeyboardInterrupt reaches the caller; the item and the rest of its batch are
    pending again at once, their attempts unchanged."""
    interrupted = [True]
    seen: list[Item] = []

    @box.handler("answer")
    def send(item: Item) -> None:
        seen.append(item)
        if interrupted[0]:
            raise KeyboardInterrupt

    for n in range(3):
        box.enqueue("answer", n, key=f"k{n}")
    with pytest.raises(KeyboardInterrupt):
        box.drain()
    assert box.pending() == 3
    interrupted[0] = False
    assert box.drain().delivered == 3
    assert [item.attempts for item in seen] == [0, 0, 0, 0]


def test_a_deferrable_call_is_stored_when_offline_and_done_later(box: Outbox) -> None:
    """Offline (a network-class error) the caller gets a receipt; ``drain`` calls the
    function again with the same arguments once it can."""
    online = [False]
    done: list[tuple[str, int]] = []

    @box.deferrable("submit")
    def submit(student: str, *, score: int) -> str:
        if not online[0]:
            raise ConnectionError("captive portal")
        done.append((student, score))
        return "saved"

    receipt = submit("ana", score=9)
    assert isinstance(receipt, Deferred)
    assert receipt.kind == "submit"
    online[0] = True
    assert submit("ben", score=7) == "saved"
    box.drain()
    assert done == [("ben", 7), ("ana", 9)]


def test_other_errors_reach_the_caller_and_when_decides_otherwise(box: Outbox) -> None:
    """A bug is not deferred; ``when=`` chooses which errors are."""

    @box.deferrable("a")
    def buggy() -> None:
        raise ValueError("bug")

    @box.deferrable("b", when=lambda error: isinstance(error, ValueError))
    def chosen() -> None:
        raise ValueError("deferred")

    with pytest.raises(ValueError, match="bug"):
        buggy()
    assert isinstance(chosen(), Deferred)
    assert box.pending() == 1


def test_arguments_that_cannot_be_stored_leave_the_callers_error_with_a_note(
    box: Outbox,
) -> None:
    """A failed call whose arguments are not JSON gets its own error back, with a note
    saying why it was not deferred; nothing is stored."""

    @box.deferrable("a")
    def send(thing: object) -> None:
        raise ConnectionError("offline")

    with pytest.raises(ConnectionError) as raised:
        send(object())
    assert any("not deferred" in note for note in raised.value.__notes__)
    assert box.pending() == 0


def test_async_functions_defer_and_drain_async_delivers(box: Outbox, fake_clock: FakeClock) -> None:
    """An async deferrable call is stored when offline and delivered by ``drain_async``."""
    done: list[int] = []
    online = [False]

    @box.deferrable("a")
    async def submit(n: int) -> int:
        if not online[0]:
            raise TimeoutError
        done.append(n)
        return n

    async def scenario() -> None:
        assert isinstance(await submit(1), Deferred)
        online[0] = True
        assert (await box.drain_async()).delivered == 1

    asyncio.run(scenario())
    assert done == [1]


def test_two_drainers_on_one_file_deliver_each_item_once(url: str) -> None:
    """Two outboxes (as two processes would) draining one file at once never lease the
    same item: each of 200 items is delivered exactly once."""
    seen: list[str] = []
    lock = threading.Lock()

    def record(item: Item) -> None:
        with lock:
            seen.append(item.key)

    boxes = [Outbox(url, batch=5) for _ in range(2)]
    for outbox in boxes:
        outbox.handler("a")(record)
    for n in range(200):
        boxes[0].enqueue("a", n, key=f"k{n}")
    threads = [threading.Thread(target=outbox.drain) for outbox in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(f"k{n}" for n in range(200))
    for outbox in boxes:
        outbox.close()


@pytest.mark.realtime
def test_a_dead_drainers_items_go_to_another_when_its_lease_ends(
    url: str, fake_clock: FakeClock
) -> None:
    """Items leased by a drainer that never finished are taken over after ``lease``
    seconds, with the same key (a handler can tell the repeat). SQLite counts the lease
    on the outbox's clock; Redis on the server's (``XAUTOCLAIM``), so that case waits
    50 ms of real time."""
    redis = url.startswith("redis")
    lease = 0.05 if redis else 30
    crashed = Outbox(url, lease=lease)
    crashed.enqueue("a", 1, key="k1")
    stuck = crashed._backend.lease(["a"], 10, "dead-process", crashed._now(), lease)
    assert [item.key for item in stuck] == ["k1"]
    survivor = Outbox(url, lease=lease)
    keys: list[str] = []
    survivor.handler("a")(lambda item: keys.append(item.key))
    assert survivor.drain().delivered == 0
    if redis:
        time.sleep(0.06)
    else:
        fake_clock.advance(31)
    assert survivor.drain().delivered == 1
    assert keys == ["k1"]
    crashed.close()
    survivor.close()


def test_a_full_disk_refuses_the_new_item_and_keeps_the_stored_ones(box: Outbox, url: str) -> None:
    """When SQLite reports the disk full, enqueue raises OutboxError (chained to
    SQLite's error) and every item stored before is still there."""
    if not url.startswith("sqlite"):
        pytest.skip("SQLite only: test_a_full_redis_refuses_... is Redis's")
    for n in range(5):
        box.enqueue("a", n, key=f"k{n}")
    connection = box._backend._connection(durable=True)
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(OutboxError) as refused:
        box.enqueue("a", "x" * 100_000, key="big")
    assert isinstance(refused.value.__cause__, sqlite3.Error)
    assert box.pending() == 5


def test_metrics_count_deliveries_by_kind_and_gauge_the_backlog(
    box: Outbox, fake_clock: FakeClock, resilient_metrics: Any
) -> None:
    """``sync_success_total`` and ``sync_failures_total`` by kind; ``pending_sync_items``
    and ``dead_letter_items`` as they stand after a drain."""
    box.handler("ok")(lambda item: None)

    @box.handler("bad")
    def bad(item: Item) -> None:
        raise ConnectionError

    box.enqueue("ok", 1)
    box.enqueue("ok", 2)
    box.enqueue("bad", 3)
    box.drain()
    resilient_metrics.assert_counter("sync_success_total", 2, kind="ok")
    resilient_metrics.assert_counter("sync_failures_total", 1, kind="bad")
    resilient_metrics.assert_gauge("pending_sync_items", 1)
    resilient_metrics.assert_gauge("dead_letter_items", 0)


def test_the_background_drainer_delivers_what_is_enqueued(url: str) -> None:
    """``start()`` delivers an item enqueued afterwards without any call to drain;
    ``stop()`` ends its thread."""
    delivered = threading.Event()
    outbox = Outbox(url)
    outbox.handler("a")(lambda item: delivered.set())
    outbox.start()
    try:
        outbox.enqueue("a", 1)
        assert delivered.wait(10)
    finally:
        outbox.stop()
    assert not any(t.name == "resilient-outbox" for t in threading.enumerate())
    outbox.close()


def test_the_default_place_is_the_users_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no URL the outbox lives under ``$XDG_DATA_HOME/resilient/outbox.db``."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with Outbox() as outbox:
        outbox.enqueue("a", 1)
    assert (tmp_path / "resilient" / "outbox.db").is_file()


def test_rs_outbox_is_reachable_from_the_package() -> None:
    """``resilient.outbox.Outbox`` is the public entry."""
    assert rs.outbox.Outbox is Outbox


def test_a_backlog_at_the_threshold_degrades_the_app_until_it_syncs(
    url: str, fake_clock: FakeClock
) -> None:
    """With ``backlog_feature``, reaching ``backlog_threshold`` pending items makes the
    feature unavailable (the level rises, the health report says why); syncing clears it."""
    sync = Feature("sync", level=DegradationLevel.minor, description="answers sync later")
    offline = [True]
    with Outbox(url, backlog_feature=sync, backlog_threshold=3) as outbox:

        @outbox.handler("answer")
        def send(item: Item) -> None:
            if offline[0]:
                raise ConnectionError("offline")

        service = DegradationService.instance
        for n in range(3):
            outbox.enqueue("answer", n)
        outbox.drain()
        assert service.level == DegradationLevel.minor
        assert "3 items are waiting to sync" in (service.why_unavailable("sync") or "")
        detail = HealthApp(token="t" * 16).report()
        assert detail["degradation"]["unavailable_features"]["sync"].endswith("waiting to sync")
        assert detail["gauges"]["pending_sync_items"] == 3
        offline[0] = False
        fake_clock.advance(5)
        outbox.drain()
        assert service.level == DegradationLevel.none
        assert HealthApp(token="t" * 16).report()["gauges"]["pending_sync_items"] == 0


def test_the_backlog_settings_are_checked(url: str) -> None:
    """A non-Feature, or a threshold under 1, is a ConfigError naming the parameter."""
    with pytest.raises(ConfigError) as refused:
        Outbox(url, backlog_feature="sync")  # type: ignore[arg-type]
    assert refused.value.parameter == "backlog_feature"
    with pytest.raises(ConfigError) as refused:
        Outbox(url, backlog_threshold=0)
    assert refused.value.parameter == "backlog_threshold"


def test_a_full_redis_refuses_the_new_item_and_keeps_the_stored_ones(
    fake_clock: FakeClock,
) -> None:
    """A Redis at its memory limit refuses writes (OOM): enqueue raises OutboxError
    chained to redis-py's error, and every item stored before is still there."""
    import redis
    from redis_server import RedisServer

    server = RedisServer().start()
    try:
        outbox = Outbox(server.url)
        for n in range(5):
            outbox.enqueue("a", n, key=f"k{n}")
        with redis.Redis.from_url(server.url) as admin:
            admin.config_set("maxmemory", 1)
            admin.config_set("maxmemory-policy", "noeviction")
            with pytest.raises(OutboxError) as refused:
                outbox.enqueue("a", "x" * 1000, key="big")
            assert isinstance(refused.value.__cause__, redis.RedisError)
            admin.config_set("maxmemory", 0)
        assert outbox.pending() == 5
        outbox.close()
    finally:
        server.stop()


def test_a_handler_runs_under_its_policy_and_waits_for_its_breaker(
    box: Outbox, fake_clock: FakeClock
) -> None:
    """``handler(kind, policy=...)``: deliveries go through the policy's steps; once its
    breaker opens, the kind waits for it without using the items' attempts, and the items
    go through when the service is back."""
    down = [True]
    calls: list[str] = []

    @box.handler(
        "grade",
        policy=rs.policy(
            breaker={"name": "grading-api", "failure_threshold": 2, "reset_timeout": 30}
        ),
    )
    def send(item: Item) -> None:
        calls.append(item.key)
        if down[0]:
            raise ConnectionError("grading API unreachable")

    for n in range(4):
        box.enqueue("grade", n, key=f"g{n}")
    box.drain()  # two failures trip the breaker; the rest wait for it
    assert calls == ["g0", "g1"]
    fake_clock.advance(29)
    box.drain()
    assert calls == ["g0", "g1"]
    down[0] = False
    fake_clock.advance(2)
    box.drain()
    assert sorted(calls[2:]) == ["g0", "g1", "g2", "g3"]
    assert box.pending() == 0
    assert box.dead() == []


def test_a_handler_policy_is_checked_when_registered(box: Outbox) -> None:
    """A policy that is not one is a ConfigError naming ``policy`` before any delivery."""
    for wrong in (42, "grading", {"retry": "quick"}, ConnectionError):
        with pytest.raises(ConfigError) as refused:
            box.handler("grade", policy=wrong)  # type: ignore[arg-type]
        assert refused.value.parameter == "policy"
        assert "resilient.policy(" in str(refused.value)


def test_a_read_only_database_refuses_the_new_item_and_keeps_the_stored_ones(
    box: Outbox, url: str
) -> None:
    """When SQLite refuses to write (a read-only file), enqueue raises OutboxError chained
    to SQLite's error, and every item stored before is still there."""
    if not url.startswith("sqlite"):
        pytest.skip("SQLite only: a Redis refusing writes is the full-Redis test")
    for n in range(3):
        box.enqueue("a", n, key=f"k{n}")
    box._backend._connection(durable=True).execute("PRAGMA query_only = ON")
    with pytest.raises(OutboxError) as refused:
        box.enqueue("a", 3, key="k3")
    assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
    assert "readonly" in str(refused.value.__cause__).replace("-", "").replace(" ", "")
    assert box.pending() == 3


def test_keys_and_groups_may_be_any_printable_text(box: Outbox) -> None:
    """An idempotency key or a group taken from the app's own ids (an e-mail, a path,
    accented letters) is stored and delivered as given."""
    seen: list[tuple[str, str | None]] = []
    box.handler("answer")(lambda item: seen.append((item.key, item.group)))
    box.enqueue("answer", 1, key="ana@school.example/q 1", group="Élève {5B}")
    assert box.enqueue("answer", 1, key="ana@school.example/q 1").stored is False
    box.drain()
    assert seen == [("ana@school.example/q 1", "Élève {5B}")]


def test_the_drainer_does_not_spin_while_a_groups_head_waits_its_backoff(
    box: Outbox, fake_clock: FakeClock
) -> None:
    """With nothing ready (the head of a group waiting out its backoff, its later items
    behind it), the background drainer waits until the head is due, not zero seconds."""

    @box.handler("answer")
    def send(item: Item) -> None:
        raise ConnectionError("offline")

    box.enqueue("answer", 1, key="ana-1", group="ana")
    box.enqueue("answer", 2, key="ana-2", group="ana")
    box.drain()
    assert box._idle_wait() >= 0.5  # the backoff is about 1 s; poll is 1 s


def test_the_drainer_does_not_spin_while_a_kinds_breaker_is_open(
    box: Outbox, fake_clock: FakeClock
) -> None:
    """Items of a kind paused by an open breaker, beyond the batch leased, are not ready:
    the drainer waits for the breaker (at most ``poll``), not zero seconds."""

    @box.handler("answer")
    def send(item: Item) -> None:
        raise CircuitOpenError("grading-api", 30.0)

    for n in range(box.batch + 3):
        box.enqueue("answer", n, key=f"a{n}")
    box.drain()
    assert box._idle_wait() == box.poll
    fake_clock.advance(30)
    assert box._idle_wait() == 0.0


def test_the_background_drainer_survives_an_unreachable_store(url: str) -> None:
    """A store error in one round of the background drainer (Redis restarting, a locked
    file) is logged and the drainer goes on delivering afterwards."""
    import redis

    outbox = Outbox(url)
    delivered = threading.Event()
    failed = threading.Event()
    outbox.handler("a")(lambda item: delivered.set())
    lease = outbox._backend.lease

    def unreachable_once(*args: Any) -> Any:
        if not failed.is_set():
            failed.set()
            raise redis.ConnectionError("connection refused")
        return lease(*args)

    outbox._backend.lease = unreachable_once  # type: ignore[method-assign]
    outbox.start()
    try:
        assert failed.wait(10)
        outbox.enqueue("a", 1)
        assert delivered.wait(10)
    finally:
        outbox.stop()
    outbox.close()


def test_a_deferrable_call_that_cannot_be_stored_keeps_its_errors_cause(box: Outbox) -> None:
    """The caller's error reaches it unchanged when the call cannot be deferred: its
    ``__cause__`` (the low-level error it was raised from) is kept."""
    low = OSError("no route to host")

    @box.deferrable("a")
    def send(thing: object) -> None:
        raise ConnectionError("offline") from low

    with pytest.raises(ConnectionError) as raised:
        send(object())
    assert raised.value.__cause__ is low


def test_a_revived_item_waits_while_a_later_item_of_its_group_is_under_way(url: str) -> None:
    """Reviving a group's dead letter while a later item of the group is being delivered
    does not let another drainer deliver it at the same time: one item of a group is
    under way at once, on both backends."""
    first = Outbox(url, max_attempts=1)
    other = Outbox(url)
    seen_by_other: list[str] = []
    other.handler("answer")(lambda item: seen_by_other.append(item.key))
    order: list[str] = []

    @first.handler("answer")
    def send(item: Item) -> None:
        order.append(item.key)
        if item.key == "a" and len(order) == 1:
            raise ConnectionError("offline")
        if item.key == "b":
            assert first.retry_dead() == 1
            other.drain()
            assert seen_by_other == []  # "b" is still under way

    first.enqueue("answer", 1, key="a", group="g")
    first.enqueue("answer", 2, key="b", group="g")
    first.drain()
    assert order == ["a", "b", "a"]
    assert seen_by_other == []
    assert first.pending() == 0
    first.close()
    other.close()


def test_a_long_group_costs_redis_the_same_per_item_as_a_short_one(url: str) -> None:
    """Delivering the head of a group of 300 items makes Redis look at a handful of keys,
    not at every item of the group (which made a long group quadratic to enqueue and
    drain, blocking Redis)."""
    if not url.startswith("redis"):
        pytest.skip("Redis only: the SQLite query is indexed")
    import redis

    box = Outbox(url)
    box.handler("a")(lambda item: None)
    for n in range(300):
        box.enqueue("a", n, group="g")

    def lookups() -> int:
        with redis.Redis.from_url(url) as client:
            stats = client.info("commandstats")
        return sum(
            int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("hexists", "zscore")
        )

    before = lookups()
    assert box.drain(limit=1).delivered == 1
    assert lookups() - before < 20
    assert box.pending() == 299
    box.close()


def test_a_busy_kind_does_not_keep_another_kinds_items_waiting(box: Outbox) -> None:
    """With three batches of one kind ready, an item of another kind enqueued after them
    is delivered in the first batch: a lease shares its batch between the kinds."""
    delivered: list[str] = []
    box.handler("busy")(lambda item: delivered.append(item.kind))
    box.handler("quiet")(lambda item: delivered.append(item.kind))
    for n in range(box.batch * 3):
        box.enqueue("busy", n)
    box.enqueue("quiet", 0)
    assert box.drain(limit=box.batch).delivered == box.batch
    assert delivered.count("quiet") == 1
    assert box.drain().delivered == box.batch * 2 + 1
    assert box.pending() == 0


def test_a_busy_kind_that_keeps_refilling_does_not_starve_another(box: Outbox) -> None:
    """A kind whose every delivery enqueues another item of it (always ready, never
    empty) leaves room in each batch for another kind's items."""
    delivered: list[str] = []

    @box.handler("busy")
    def refill(item: Item) -> None:
        delivered.append("busy")
        box.enqueue("busy", item.payload + 1)

    box.handler("quiet")(lambda item: delivered.append("quiet"))
    for n in range(box.batch):
        box.enqueue("busy", n)
    for n in range(3):
        box.enqueue("quiet", n)
    box.drain(limit=box.batch * 2)
    assert delivered.count("quiet") == 3


def test_created_keeps_the_clocks_full_precision(box: Outbox, fake_clock: FakeClock) -> None:
    """``Item.created`` and ``DeadItem.created`` are the outbox's time when the item was
    stored, exactly, on both backends (Redis rounded it to 0.1 ms)."""
    fake_clock.advance(0.000_123_456_7)
    stored_at = box._now()
    seen: list[float] = []

    @box.handler("answer")
    def send(item: Item) -> None:
        seen.append(item.created)
        raise ConnectionError("offline")

    box.enqueue("answer", 1, key="a")
    for _ in range(3):
        box.drain()
        fake_clock.advance(600)
    assert seen == [stored_at] * 3
    (dead,) = box.dead()
    assert dead.created == stored_at
    assert box.purge(older_than=600 * 3 - 1) == 1  # compared at full precision too


def test_a_revived_item_goes_before_the_later_items_of_its_group(
    url: str, fake_clock: FakeClock
) -> None:
    """A dead letter revived while a later item of its group waits out its backoff is
    delivered first, and the later item then still waits its backoff: a group goes in
    order, on both backends."""
    box = Outbox(url, max_attempts=2)
    failing = {"a", "b"}
    order: list[str] = []

    @box.handler("answer")
    def send(item: Item) -> None:
        order.append(item.key)
        if item.key in failing:
            raise ConnectionError("offline")

    box.enqueue("answer", 1, key="a", group="g")
    box.enqueue("answer", 2, key="b", group="g")
    box.drain()
    fake_clock.advance(10)
    box.drain()  # "a" fails again and is set aside; "b" fails once and waits ~1 s
    assert order == ["a", "a", "b"]
    assert [dead.key for dead in box.dead()] == ["a"]
    failing.clear()
    assert box.retry_dead() == 1
    box.drain()
    assert order[3:] == ["a"]
    fake_clock.advance(10)
    box.drain()
    assert order[3:] == ["a", "b"]
    assert box.pending() == 0
    box.close()


def test_leasing_a_groups_next_item_does_not_walk_the_group(tmp_path: Path) -> None:
    """SQLite's work (virtual machine steps) to lease and deliver the next item of a
    group is about the same in a group of 3,000 items as in one of 30: a lease stops at
    the group's head instead of walking the group (which made draining it quadratic)."""

    def steps(items: int) -> int:
        box = Outbox(f"sqlite:///{tmp_path / f'{items}.db'}", synchronous="NORMAL")
        backend: Any = box._backend
        for n in range(items):
            backend.put(f"k{n:05}", "a", "1", "g", 0.0, True)
        counted = [0]

        def step() -> int:
            counted[0] += 1
            return 0

        backend._connection().set_progress_handler(step, 1)
        for n in range(5):
            (item,) = backend.lease(["a"], 32, "me", 1.0, 30.0)
            assert item.key == f"k{n:05}"
            backend.done(item)
        box.close()
        return counted[0]

    short, long = steps(30), steps(3_000)
    assert long < short * 1.5, (short, long)


def test_a_file_made_by_an_older_version_delivers_its_groups_in_order(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """An outbox file whose later items of a group sit beside their head (as an older
    version stored them) is opened as it is and delivers each group in order."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE outbox_items (position INTEGER PRIMARY KEY, key TEXT NOT NULL "
            "UNIQUE, kind TEXT NOT NULL, grp TEXT, payload TEXT NOT NULL, created REAL NOT "
            "NULL, attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0, "
            "lease_owner TEXT, lease_until REAL NOT NULL DEFAULT 0, last_error TEXT, "
            "dead INTEGER NOT NULL DEFAULT 0)"
        )
        rows = [("g1", "g", 0), ("g2", "g", 0), ("h1", "h", 1), ("h2", "h", 0), ("x", None, 0)]
        old.executemany(
            "INSERT INTO outbox_items (key, kind, grp, payload, created, dead) "
            "VALUES (?, 'a', ?, '1', 0, ?)",
            rows,
        )
    old.close()  # the with block only commits
    box = Outbox(f"sqlite:///{path}")
    order: list[str] = []
    box.handler("a")(lambda item: order.append(item.key))
    box.drain()
    assert sorted(order) == ["g1", "g2", "h2", "x"]
    assert order.index("g1") < order.index("g2")
    assert box.retry_dead() == 1
    box.drain()
    assert order[-1] == "h1"
    box.close()

"""The outbox: enqueue against a bare sqlite3 insert-and-commit loop with the same
durability, and the cost of draining an item beyond its handler's own time."""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
import time
from pathlib import Path

from _harness import (
    EXPECTED,
    Impl,
    Options,
    Row,
    Scenario,
    ScenarioResult,
    Target,
    TargetResult,
    TimedScenario,
    register,
)

from resilient.outbox import Outbox

_FOLDER = Path(tempfile.mkdtemp(prefix="resilient-bench-outbox-"))
_names = itertools.count()


def _path() -> Path:
    return _FOLDER / f"{next(_names)}.db"


def _bare(synchronous: str):  # type: ignore[no-untyped-def]
    """The obvious loop: one INSERT and one COMMIT per item, WAL, the same synchronous."""
    connection = sqlite3.connect(_path(), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, key TEXT UNIQUE, kind TEXT, "
        "payload TEXT, created REAL)"
    )
    keys = itertools.count()
    payload = '{"student":"ana","answer":42}'

    def insert() -> int:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO items (key, kind, payload, created) VALUES (?, ?, ?, ?)",
            (str(next(keys)), "answer", payload, time.time()),
        )
        connection.execute("COMMIT")
        return EXPECTED

    return insert


def _ours(synchronous: str):  # type: ignore[no-untyped-def]
    outbox = Outbox(f"sqlite:///{_path()}", synchronous=synchronous)
    payload = {"student": "ana", "answer": 42}

    def enqueue() -> int:
        outbox.enqueue("answer", payload)
        return EXPECTED

    return enqueue


for level in ("FULL", "NORMAL"):
    register(
        TimedScenario(
            f"outbox: enqueue, synchronous={level}",
            [
                Impl("bare sqlite3 insert+commit", "reference", lambda level=level: _bare(level)),
                Impl("resilient Outbox.enqueue", "ours", lambda level=level: _ours(level)),
            ],
            # throughput >= 0.8x the bare loop, that is time per item <= 1.25x
            Target("reference", 1.25),
            notes=["same durability: WAL, one transaction per item"],
        )
    )


def _bare_xadd():  # type: ignore[no-untyped-def]
    """The obvious Redis loop: one XADD per item, the payload as a field."""
    import redis
    from redis_store import server_url

    client = redis.Redis.from_url(server_url())
    stream = f"bench:{next(_names)}"
    payload = '{"student":"ana","answer":42}'

    def xadd() -> int:
        client.xadd(stream, {"kind": "answer", "payload": payload})
        return EXPECTED

    return xadd


def _redis_ours():  # type: ignore[no-untyped-def]
    from redis_store import server_url

    outbox = Outbox(server_url(), name=f"bench{next(_names)}")
    payload = {"student": "ana", "answer": 42}

    def enqueue() -> int:
        outbox.enqueue("answer", payload)
        return EXPECTED

    return enqueue


register(
    TimedScenario(
        "outbox: enqueue on Redis",
        [
            Impl("bare redis-py XADD", "reference", _bare_xadd),
            Impl("resilient Outbox.enqueue", "ours", _redis_ours),
        ],
        # throughput >= 0.8x the bare loop, that is time per item <= 1.25x
        Target("reference", 1.25),
        notes=["one round trip each: our enqueue is one script (idempotent key, group order)"],
    )
)


class DrainScenario(Scenario):
    """ns per item that ``drain()`` adds to a no-op handler (lease, ack, metrics)."""

    name = "outbox: drain overhead per item"

    def run(self, opts: Options) -> ScenarioResult:
        items = 200 if opts.min_time < 0.05 else 2_000
        figures: list[float] = []
        for _ in range(opts.repeats):
            outbox = Outbox(f"sqlite:///{_path()}", synchronous="FULL")
            outbox.handler("answer")(lambda item: None)
            for n in range(items):
                outbox.enqueue("answer", {"n": n})
            started = time.perf_counter_ns()
            drained = outbox.drain()
            figures.append((time.perf_counter_ns() - started) / items)
            assert drained.delivered == items
            outbox.close()
        row = Row("resilient Outbox.drain", "ours")
        row.repeats_ns = figures
        row.ns = sorted(figures)[len(figures) // 2]
        row.min_ns = min(figures)
        row.n = items
        limit = 50_000
        status = "PASS" if row.ns <= limit else "FAIL"
        text = f"<= {limit:,} ns per item: got {row.ns:,.0f} ns"
        return ScenarioResult(self.name, [row], TargetResult(text, status), [])


register(DrainScenario())


def _drain_group(items: int) -> float:
    """ns per item to drain one group of ``items`` items (a no-op handler)."""
    outbox = Outbox(f"sqlite:///{_path()}", synchronous="NORMAL")
    outbox.handler("answer")(lambda item: None)
    for n in range(items):
        outbox.enqueue("answer", {"n": n}, group="ana")
    started = time.perf_counter_ns()
    drained = outbox.drain()
    elapsed = (time.perf_counter_ns() - started) / items
    assert drained.delivered == items
    outbox.close()
    return elapsed


class LongGroupScenario(Scenario):
    """ns per item to drain one group of 20,000 items (2,000 with ``--quick``) against
    a group of 200: one item of a group is leased at a time, and leasing it must not walk
    the group."""

    name = "outbox: drain one long group"

    def run(self, opts: Options) -> ScenarioResult:
        long = 2_000 if opts.min_time < 0.05 else 20_000
        rows = []
        for items, role in ((200, "reference"), (long, "ours")):
            figures = [_drain_group(items) for _ in range(min(opts.repeats, 3))]
            row = Row(f"one group of {items:,} items", role)  # type: ignore[arg-type]
            row.repeats_ns = figures
            row.ns = sorted(figures)[len(figures) // 2]
            row.min_ns = min(figures)
            row.n = items
            rows.append(row)
        short_ns, long_ns = rows[0].ns, rows[1].ns
        assert short_ns is not None
        assert long_ns is not None
        ratio = long_ns / short_ns
        status = "PASS" if ratio <= 1.5 else "FAIL"
        text = f"<= 1.5x per item of the short group (linear, not quadratic): got {ratio:.2f}x"
        return ScenarioResult(self.name, rows, TargetResult(text, status), [])


register(LongGroupScenario())

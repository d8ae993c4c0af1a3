"""``kill -9`` at random points of enqueuing and of draining (real processes, a real
SQLite file): every acknowledged item is delivered at least once, duplicates only for a
delivery cut between its side effect and its acknowledgement, and the backlog gauge is
exact afterwards."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from processes import die_with_parent
from redis_server import shared_server

from resilient.outbox import Outbox
from resilient.testing import FakeClock

WORKER = Path(__file__).with_name("crash_worker.py")
RUNS = 20
ITEMS = 40

pytestmark = pytest.mark.realtime


ROOT = Path(__file__).resolve().parents[2]


def start(*arguments: str) -> subprocess.Popen[str]:
    """The worker, importing this checkout's resilient (installed or not)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, str(WORKER), *arguments],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,
        env={**os.environ, "PYTHONPATH": path},
    )


def read_until_killed(process: subprocess.Popen[str], lines: int) -> list[str]:
    """The lines the child printed before it was killed after its ``lines``-th one
    (all of them, if it finished first)."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line.strip())
        if len(seen) >= lines:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    seen.extend(line.strip() for line in process.stdout)  # printed before the kill landed
    process.stdout.close()
    assert process.returncode in (0, -signal.SIGKILL), process.returncode
    return seen


OUTBOX_DB = 14
"""The database of the shared redis-server the crash tests own (and empty first)."""


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty outbox: a SQLite file, or a database of the shared real redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    import redis

    found = f"{shared_server().url.rsplit('/', 1)[0]}/{OUTBOX_DB}"
    with redis.Redis.from_url(found) as client:
        client.flushdb()
    return found


def lease_of(url: str) -> float:
    """The drainers' lease: on Redis it is counted by the server's clock, so it is short
    and the survivor waits it out for real; on SQLite the test's clock jumps past it."""
    return 0.2 if url.startswith("redis") else 600


def takeable(url: str, tmp_path: Path) -> int:
    """About how many items the next drainer can take (what no killed one leased)."""
    if url.startswith("redis"):
        with Outbox(url) as outbox:
            return outbox.pending()
    with closing(sqlite3.connect(tmp_path / "outbox.db")) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM outbox_items WHERE dead = 0 AND lease_owner IS NULL"
        ).fetchone()
    return int(row[0])


def take_over(url: str, fake_clock: FakeClock) -> None:
    """Let the killed drainers' leases end."""
    if url.startswith("redis"):
        time.sleep(lease_of(url) + 0.05)
    else:
        fake_clock.advance(lease_of(url) + 1)


def test_killed_enqueuers_and_drainers_lose_nothing(
    url: str, tmp_path: Path, fake_clock: FakeClock
) -> None:
    """20 enqueuing and 20 draining processes killed at seeded random points, then one
    clean drain: each acknowledged key is delivered, duplicates are rare and keyed."""
    log = tmp_path / "side-effects.log"
    log.touch()
    chance = random.Random(20261129)
    acknowledged: set[str] = set()
    cut_deliveries = 0
    for run in range(RUNS):
        enqueuer = start("enqueue", url, str(run * ITEMS), str(ITEMS))
        acknowledged.update(read_until_killed(enqueuer, chance.randrange(1, ITEMS)))
        drainer = start("drain", url, str(log), str(lease_of(url)))
        kill_after = chance.randrange(1, max(2, takeable(url, tmp_path)))
        delivered = read_until_killed(drainer, kill_after)
        if delivered[-1:] != ["drained"]:
            cut_deliveries += 1
    with Outbox(url, lease=lease_of(url)) as survivor:
        take_over(url, fake_clock)  # the killed drainers' leases end: their items are free
        with log.open("a", encoding="ascii") as side_effects:
            survivor.handler("work")(lambda item: side_effects.write(item.key + "\n"))
            survivor.drain()
        assert survivor.pending() == 0
        assert survivor.dead() == []
    delivered_keys = Counter(log.read_text(encoding="ascii").split())
    assert acknowledged <= set(delivered_keys)
    duplicates = {key: n for key, n in delivered_keys.items() if n > 1}
    # A drainer killed between a handler's side effect and its acknowledgement repeats
    # at most the one item it was delivering.
    assert sum(n - 1 for n in duplicates.values()) <= cut_deliveries
    assert len(acknowledged) >= RUNS


def test_the_pending_gauge_is_exact_after_crashes(
    url: str, fake_clock: FakeClock, resilient_metrics: object
) -> None:
    """After killed enqueuers, ``pending_sync_items`` equals what the outbox holds."""
    chance = random.Random(7)
    acknowledged: set[str] = set()
    for run in range(5):
        enqueuer = start("enqueue", url, str(run * ITEMS), str(ITEMS))
        acknowledged.update(read_until_killed(enqueuer, chance.randrange(1, ITEMS)))
    with Outbox(url) as outbox:
        outbox.refresh_gauges()
        stored = outbox.pending()
        assert stored >= len(acknowledged)
        resilient_metrics.assert_gauge("pending_sync_items", stored)  # type: ignore[attr-defined]
        keys: list[str] = []
        outbox.handler("work")(lambda item: keys.append(item.key))
        outbox.drain()
        assert len(keys) == stored
        resilient_metrics.assert_gauge("pending_sync_items", 0)  # type: ignore[attr-defined]

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
from collections import Counter
from pathlib import Path

import pytest
from processes import die_with_parent

from resilient.outbox import Item, Outbox
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


def pending(folder: Path) -> int:
    """Items the file holds that no killed drainer leased (what the next one can take)."""
    with sqlite3.connect(folder / "outbox.db") as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM outbox_items WHERE dead = 0 AND lease_owner IS NULL"
        ).fetchone()
    return int(row[0])


def test_killed_enqueuers_and_drainers_lose_nothing(tmp_path: Path, fake_clock: FakeClock) -> None:
    """20 enqueuing and 20 draining processes killed at seeded random points, then one
    clean drain: each acknowledged key is delivered, duplicates are rare and keyed."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    log = tmp_path / "side-effects.log"
    log.touch()
    chance = random.Random(20261129)
    acknowledged: set[str] = set()
    cut_deliveries = 0
    for run in range(RUNS):
        enqueuer = start("enqueue", url, str(run * ITEMS), str(ITEMS))
        acknowledged.update(read_until_killed(enqueuer, chance.randrange(1, ITEMS)))
        drainer = start("drain", url, str(log))
        delivered = read_until_killed(drainer, chance.randrange(1, max(2, pending(tmp_path))))
        if delivered[-1:] != ["drained"]:
            cut_deliveries += 1
    with Outbox(url) as survivor:
        fake_clock.advance(601)  # the killed drainers' leases end: their items are free
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
    tmp_path: Path, fake_clock: FakeClock, resilient_metrics: object
) -> None:
    """After killed enqueuers, ``pending_sync_items`` equals what the file holds."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
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


def test_item_is_typed_for_handlers() -> None:
    """Handlers receive ``Item`` objects (a reminder for readers of the worker)."""
    assert Item.__slots__

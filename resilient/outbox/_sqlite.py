"""The embedded outbox: one SQLite file (WAL), shared safely by threads and processes.

Each item is a row. A drainer *leases* rows (owner and expiry written by one
statement, so two drainers never lease the same row), delivers
them, then deletes them; a drainer that dies leaves leases that expire, and its items go
to the next drainer. Within a group only the oldest live item can be leased, and only
while no other item of the group is leased, which delivers a group in order; the later
items of a group wait in a table of their own until their turn, so leasing costs the
same in a long group as in a short one. A lease shares its batch between the kinds.

Times stored are wall-clock seconds from the outbox's clock (``now``), so leases mean
the same to every process on the host.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from ._items import DeadItem, Item, OutboxError

__all__ = ["SQLiteBackend", "default_path"]

_FORWARD: Final = """
INSERT INTO outbox_items (position, key, kind, grp, payload, created)
    SELECT position, key, kind, grp, payload, created FROM outbox_later
    WHERE grp = {row}.grp AND NOT EXISTS (
        SELECT 1 FROM outbox_items WHERE grp = {row}.grp AND dead = 0)
    ORDER BY position LIMIT 1;
DELETE FROM outbox_later WHERE position IN (
    SELECT position FROM outbox_items WHERE grp = {row}.grp AND dead = 0);
"""
"""Bring a group's next item forward when it has no live item left among the leasable."""

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS outbox_items (
    position INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    grp TEXT,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    dead INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE INDEX IF NOT EXISTS outbox_groups ON outbox_items (grp, position)
    WHERE grp IS NOT NULL AND dead = 0""",
    # the items of a group behind its head, out of the way of every lease
    """CREATE TABLE IF NOT EXISTS outbox_later (
    position INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    grp TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS outbox_later_groups ON outbox_later (grp, position)",
    # a group's last live item delivered (or purged): its next item comes forward
    f"""CREATE TRIGGER IF NOT EXISTS outbox_delivered AFTER DELETE ON outbox_items
    WHEN OLD.grp IS NOT NULL AND OLD.dead = 0
    BEGIN {_FORWARD.format(row="OLD")} END""",
    # a group's last live item set aside: its next item comes forward
    f"""CREATE TRIGGER IF NOT EXISTS outbox_buried AFTER UPDATE OF dead ON outbox_items
    WHEN NEW.dead = 1 AND OLD.dead = 0 AND NEW.grp IS NOT NULL
    BEGIN {_FORWARD.format(row="NEW")} END""",
)
"""A row of ``outbox_items`` is an item a lease may take (one without a group, or a
group's oldest live item), or a dead letter; the later items of a group wait in
``outbox_later`` until the one before them is gone, so a lease walks neither them nor a
long group, and an item without a group is stored in one table and one index."""

_NEXT_POSITION: Final = """MAX(
    COALESCE((SELECT MAX(position) FROM outbox_items), 0),
    COALESCE((SELECT MAX(position) FROM outbox_later), 0)) + 1"""
"""Positions grow across both tables, so an item coming forward keeps its own."""

_INSERT: Final = (
    "INSERT INTO outbox_items (position, key, kind, grp, payload, created) "
    f"VALUES ({_NEXT_POSITION}, :key, :kind, :grp, :payload, :created)"
)
_INSERT_NEW: Final = (
    "INSERT INTO outbox_items (position, key, kind, grp, payload, created) "
    f"SELECT {_NEXT_POSITION}, :key, :kind, :grp, :payload, :created "
    "WHERE NOT EXISTS (SELECT 1 FROM outbox_later WHERE key = :key) "
    "ON CONFLICT (key) DO NOTHING RETURNING position"
)
_INSERT_LATER: Final = (
    "INSERT INTO outbox_later (position, key, kind, grp, payload, created) "
    f"VALUES ({_NEXT_POSITION}, :key, :kind, :grp, :payload, :created)"
)
_FIND: Final = (
    "SELECT position FROM outbox_items WHERE key = :key "
    "UNION ALL SELECT position FROM outbox_later WHERE key = :key"
)

_HEAD: Final = """(grp IS NULL OR (position = (
            SELECT MIN(position) FROM outbox_items AS j
            WHERE j.grp = i.grp AND j.grp IS NOT NULL AND j.dead = 0)
        AND NOT EXISTS (
            SELECT 1 FROM outbox_items AS k
            WHERE k.grp = i.grp AND k.dead = 0 AND k.position != i.position
              AND k.lease_until > :now)))"""
"""An item that may go next: not in a group, or its group's oldest live item while no
other item of the group is leased (a dead letter revived behind one under way waits)."""

_LEASE: Final = f"""
UPDATE outbox_items SET lease_owner = :owner, lease_until = :until WHERE position IN (
    SELECT position FROM outbox_items AS i
    WHERE dead = 0 AND not_before <= :now AND lease_until <= :now AND kind = :kind
      AND {_HEAD}
    ORDER BY position LIMIT :limit)
RETURNING position, key, kind, grp, payload, attempts, created
"""
"""Lease the oldest ready items of a kind in one statement (so, atomically): within a
group only the oldest live item, and only while no other item of the group is leased."""


def default_path() -> Path:
    """Where the outbox lives when no path is given: the user's data folder."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif (Path.home() / "Library" / "Application Support").is_dir():
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "resilient" / "outbox.db"


class SQLiteBackend:
    """Items in a SQLite file; ``synchronous`` is ``"FULL"`` (every enqueue survives a
    power cut) or ``"NORMAL"`` (survives the process crashing; faster)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._local = threading.local()
        self._connections: dict[sqlite3.Connection, threading.Thread] = {}
        """Every open connection, with the thread it belongs to."""
        self._lock = threading.Lock()
        self._turn = 0
        """Which kind a lease offers its batch first: each lease the next one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write(_make_schema, durable=True)
        except (OSError, sqlite3.Error) as error:
            raise OutboxError(f"cannot open the outbox at {self.path}: {error}") from error

    def __repr__(self) -> str:
        return f"<SQLiteBackend {str(self.path)!r} synchronous={self.synchronous}>"

    def _connection(self, durable: bool = False) -> sqlite3.Connection:
        """This thread's connection: ``durable`` ones commit with the configured
        ``synchronous`` (storing items); the others with ``NORMAL``, enough for leases
        and acknowledgements, whose loss in a power cut only means a delivery again."""
        name = "durable" if durable else "plain"
        connection: sqlite3.Connection | None = getattr(self._local, name, None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                level = self.synchronous if durable else "NORMAL"
                connection.execute(f"PRAGMA synchronous={level}")
            except BaseException:
                connection.close()
                raise
            setattr(self._local, name, connection)
            with self._lock:
                # the connections of threads that ended are closed here (a thread per
                # request must not leave a file handle open each)
                ended = [c for c, thread in self._connections.items() if not thread.is_alive()]
                for other in ended:
                    del self._connections[other]
                self._connections[connection] = threading.current_thread()
            for other in ended:
                other.close()
        return connection

    def close(self) -> None:
        """Close every thread's connection (the file stays)."""
        with self._lock:
            connections, self._connections = self._connections, {}
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def _error(self, what: str, error: sqlite3.Error) -> OutboxError:
        return OutboxError(f"the outbox at {self.path} could not {what}: {error}")

    def _write(self, work: Callable[[sqlite3.Connection], Any], durable: bool = False) -> Any:
        """Run ``work`` in one immediate (write-locking) transaction."""
        connection = self._connection(durable)
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            # SQLite may have ended the transaction itself (a full disk, an I/O error):
            # end what is left of it, and let the error that stopped it go on
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:  # the connection is unusable: the next call opens one
                    self._discard(connection)
            raise
        return result

    def _discard(self, connection: sqlite3.Connection) -> None:
        """Close a connection that cannot end its transaction (closing rolls it back)."""
        for name in ("durable", "plain"):
            if getattr(self._local, name, None) is connection:
                delattr(self._local, name)
        with self._lock:
            self._connections.pop(connection, None)
        connection.close()

    # --- storing ---------------------------------------------------------------------

    def put(
        self,
        key: str,
        kind: str,
        payload: str,
        group: str | None,
        now: float,
        fresh: bool = False,
    ) -> tuple[int, bool]:
        """Store an item unless its key is there; its position, and whether it was new.

        One statement, so one transaction of its own (the connection commits each
        statement): a fresh key is a plain insert, a chosen one may find its row there.
        """
        values = {"key": key, "kind": kind, "grp": group, "payload": payload, "created": now}
        try:
            if group is not None:
                return self._put_grouped(values, fresh)
            connection = self._connection(durable=True)
            if fresh:
                cursor = connection.execute(_INSERT, values)
                return int(cursor.lastrowid or 0), True
            row = connection.execute(_INSERT_NEW, values).fetchone()
            if row is not None:
                return int(row[0]), True
            found = connection.execute(_FIND, {"key": key}).fetchone()
        except sqlite3.Error as error:
            raise self._error("store the item", error) from error
        return (int(found[0]) if found is not None else 0), False

    def _put_grouped(self, values: dict[str, Any], fresh: bool) -> tuple[int, bool]:
        """An item of a group, in one transaction: where a lease can take it when its
        group has no live item there, else behind them in ``outbox_later``."""

        def put(connection: sqlite3.Connection) -> tuple[int, bool]:
            if not fresh:
                found = connection.execute(_FIND, values).fetchone()
                if found is not None:
                    return int(found[0]), False
            behind = connection.execute(
                "SELECT 1 FROM outbox_items WHERE grp = :grp AND dead = 0 LIMIT 1", values
            ).fetchone()
            cursor = connection.execute(_INSERT if behind is None else _INSERT_LATER, values)
            return int(cursor.lastrowid or 0), True

        return self._write(put, durable=True)  # type: ignore[no-any-return]

    # --- delivering ------------------------------------------------------------------

    def lease(
        self, kinds: Iterable[str], limit: int, owner: str, now: float, seconds: float
    ) -> list[Item]:
        """Lease up to ``limit`` ready items of ``kinds`` to ``owner`` for ``seconds``,
        oldest first."""
        wanted = list(kinds)
        if not wanted:
            return []
        # the batch is shared by the kinds: each takes its share first (the first kind
        # asked turns each lease), then the kinds that had more fill what is left
        self._turn = turn = (self._turn + 1) % len(wanted)
        wanted = wanted[turn:] + wanted[:turn]
        share = -(-limit // len(wanted))
        values: dict[str, Any] = {"owner": owner, "until": now + seconds, "now": now}
        rows: list[Any] = []
        more: list[str] = []
        try:
            connection = self._connection()
            for kind in wanted:
                want = min(share, limit - len(rows))
                if want <= 0:
                    break
                taken = connection.execute(
                    _LEASE, {**values, "kind": kind, "limit": want}
                ).fetchall()
                rows += taken
                if len(taken) == want:
                    more.append(kind)
            for kind in more:
                if len(rows) >= limit:
                    break
                rows += connection.execute(
                    _LEASE, {**values, "kind": kind, "limit": limit - len(rows)}
                ).fetchall()
        except sqlite3.Error as error:
            raise self._error("lease items", error) from error
        rows.sort()
        return [
            Item(key, kind, json.loads(payload), grp, position, attempts, created)
            for position, key, kind, grp, payload, attempts, created in rows
        ]

    def done(self, item: Item) -> None:
        """The item was delivered: forget it."""
        try:
            self._connection().execute(
                "DELETE FROM outbox_items WHERE position = ? AND key = ?",
                (item.position, item.key),
            )
        except sqlite3.Error as error:
            raise self._error("record a delivery", error) from error

    def failed(self, item: Item, error: str, retry_at: float, count: bool) -> None:
        """Give the item back, to be tried again at ``retry_at`` (``count``: the attempt
        counts against the item; a breaker's refusal does not)."""
        try:
            self._connection().execute(
                "UPDATE outbox_items SET attempts = attempts + ?, last_error = ?, not_before = ?, "
                "lease_owner = NULL, lease_until = 0 WHERE position = ? AND key = ?",
                (1 if count else 0, error, retry_at, item.position, item.key),
            )
        except sqlite3.Error as refused:
            raise self._error("record a delivery", refused) from refused

    def bury(self, item: Item, error: str) -> None:
        """Set the item aside as a dead letter."""
        try:
            self._connection().execute(
                "UPDATE outbox_items SET attempts = attempts + 1, last_error = ?, dead = 1, "
                "lease_owner = NULL, lease_until = 0 WHERE position = ? AND key = ?",
                (error, item.position, item.key),
            )
        except sqlite3.Error as refused:
            raise self._error("record a delivery", refused) from refused

    def next_ready(self, kinds: Iterable[str]) -> float | None:
        """The earliest time an item of ``kinds`` becomes ready (``None``: none pending);
        an item behind the head of its group waits for the head, and the head for the
        lease of any other item of its group."""
        wanted = list(kinds)
        if not wanted:
            return None
        names = {f"kind{n}": kind for n, kind in enumerate(wanted)}
        query = (
            "SELECT MIN(MAX(not_before, lease_until, COALESCE((SELECT MAX(lease_until) "
            "FROM outbox_items AS k WHERE k.grp = i.grp AND k.dead = 0 "
            "AND k.position != i.position), 0))) FROM outbox_items AS i "
            f"WHERE dead = 0 AND kind IN ({', '.join(f':{name}' for name in names)}) "
            "AND (grp IS NULL OR position = (SELECT MIN(position) FROM outbox_items AS j "
            "WHERE j.grp = i.grp AND j.grp IS NOT NULL AND j.dead = 0))"
        )
        try:
            row = self._connection().execute(query, names).fetchone()
        except sqlite3.Error as error:
            raise self._error("look for the next ready item", error) from error
        return None if row is None or row[0] is None else float(row[0])

    # --- looking and tidying ---------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """How many items are pending and how many are dead letters."""
        try:
            row = (
                self._connection()
                .execute(
                    "SELECT COALESCE(SUM(dead = 0), 0) + (SELECT COUNT(*) FROM outbox_later), "
                    "COALESCE(SUM(dead = 1), 0) FROM outbox_items"
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            raise self._error("count its items", error) from error
        return int(row[0]), int(row[1])

    def dead(self, limit: int) -> list[DeadItem]:
        try:
            rows = (
                self._connection()
                .execute(
                    "SELECT key, kind, payload, grp, position, attempts, created, last_error "
                    "FROM outbox_items WHERE dead = 1 ORDER BY position LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        except sqlite3.Error as error:
            raise self._error("read its dead letters", error) from error
        return [
            DeadItem(key, kind, json.loads(payload), grp, position, attempts, created, error or "")
            for key, kind, payload, grp, position, attempts, created, error in rows
        ]

    def revive(self, keys: Iterable[str] | None) -> int:
        """Make dead letters (all, or those of ``keys``) pending again, attempts reset."""
        update = (
            "UPDATE outbox_items SET dead = 0, attempts = 0, not_before = 0, "
            "last_error = NULL WHERE dead = 1"
        )
        wanted = None if keys is None else list(keys)

        def revive(c: sqlite3.Connection) -> int:
            if wanted is None:
                return int(c.execute(update).rowcount)
            return sum(c.execute(update + " AND key = ?", (k,)).rowcount for k in wanted)

        try:
            return int(self._write(revive))
        except sqlite3.Error as error:
            raise self._error("revive dead letters", error) from error

    def purge(self, dead: bool, kind: str | None, before: float | None) -> int:
        """Delete dead letters (``dead``) or pending items, of ``kind``, stored before
        ``before``; the number deleted."""
        clauses: list[str] = []
        values: list[Any] = []
        if kind is not None:
            clauses.append("kind = ?")
            values.append(kind)
        if before is not None:
            clauses.append("created < ?")
            values.append(before)
        where = "".join(f" AND {clause}" for clause in clauses)

        def purge(c: sqlite3.Connection) -> int:
            deleted = 0
            if not dead:  # the later items of a group first: their heads do not bring them on
                deleted += c.execute(f"DELETE FROM outbox_later WHERE 1{where}", values).rowcount
            sql = f"DELETE FROM outbox_items WHERE dead = ?{where}"
            return deleted + int(c.execute(sql, [1 if dead else 0, *values]).rowcount)

        try:
            return int(self._write(purge))
        except sqlite3.Error as error:
            raise self._error("purge items", error) from error


def _make_schema(connection: sqlite3.Connection) -> None:
    """Make the tables, indexes and triggers an outbox needs (a file made before some of
    them existed gets them; its items stay where they are and go in order)."""
    for statement in _SCHEMA:
        connection.execute(statement)

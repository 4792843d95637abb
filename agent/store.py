"""Durable state in SQLite: every resource as its latest snapshot, plus hold history.

One writer thread owns the connection and commits in groups: it takes every
change queued while the previous commit was on disk and commits them together,
so 32 clients cost one fsync rather than 32, and the event loop never waits on
the disk. A change's future resolves only after its group is committed; the
caller answers the client after that. The queue is FIFO, so a change is never
acknowledged before a change it depended on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.model import HOLD_ENDING, Event, EventType, Hold, Holder, HoldKind, Kind, Resource

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    metadata TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT NOT NULL,
    gone INTEGER NOT NULL,
    absent_since REAL,
    hold_kind TEXT,
    hold_key TEXT,
    holder_id TEXT,
    holder_url TEXT,
    hold_since REAL,
    hold_expires REAL,
    hold_duration REAL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_id TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    holder_id TEXT NOT NULL,
    holder_url TEXT NOT NULL,
    reserved_at REAL,
    locked_at REAL,
    ended_at REAL,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS history_by_resource ON history (resource_id, seq);
"""

UPSERT_RESOURCE = """
INSERT INTO resources VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (id) DO UPDATE SET
    name=excluded.name, kind=excluded.kind, description=excluded.description,
    metadata=excluded.metadata, enabled=excluded.enabled,
    disabled_reason=excluded.disabled_reason, gone=excluded.gone,
    absent_since=excluded.absent_since, hold_kind=excluded.hold_kind,
    hold_key=excluded.hold_key, holder_id=excluded.holder_id,
    holder_url=excluded.holder_url, hold_since=excluded.hold_since,
    hold_expires=excluded.hold_expires, hold_duration=excluded.hold_duration
"""


class StoreError(Exception):
    """The state directory or database cannot be used."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One hold in a resource's past (or present, while ``ended_at`` is None)."""

    kind: str
    holder: Holder
    reserved_at: float | None
    locked_at: float | None
    ended_at: float | None
    end_reason: str | None


def _resource_row(res: Resource) -> tuple[Any, ...]:
    h = res.hold
    return (
        res.id,
        res.name,
        res.kind.value,
        res.description,
        json.dumps(dict(res.metadata), sort_keys=True),
        int(res.enabled),
        res.disabled_reason,
        int(res.gone),
        res.absent_since,
        h.kind.value if h else None,
        h.key if h else None,
        h.holder.id if h else None,
        h.holder.url if h else None,
        h.since if h else None,
        h.expires if h else None,
        h.duration if h else None,
    )


def _row_resource(row: sqlite3.Row) -> Resource:
    hold = None
    if row["hold_kind"] is not None:
        hold = Hold(
            kind=HoldKind(row["hold_kind"]),
            key=row["hold_key"],
            holder=Holder(row["holder_id"], row["holder_url"]),
            since=row["hold_since"],
            expires=row["hold_expires"],
            duration=row["hold_duration"],
        )
    return Resource(
        id=row["id"],
        name=row["name"],
        kind=Kind(row["kind"]),
        description=row["description"],
        metadata=json.loads(row["metadata"]),
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
        gone=bool(row["gone"]),
        absent_since=row["absent_since"],
        hold=hold,
    )


def _apply(conn: sqlite3.Connection, event: Event, now: float) -> None:
    conn.execute(UPSERT_RESOURCE, _resource_row(event.resource))
    hold = event.hold
    if hold is None:
        return
    if event.type is EventType.RESERVED:
        conn.execute(
            "INSERT INTO history (resource_id, key, kind, holder_id, holder_url, reserved_at)"
            " VALUES (?,?,?,?,?,?)",
            (event.resource.id, hold.key, "reserved", hold.holder.id, hold.holder.url, hold.since),
        )
    elif event.type is EventType.LOCKED:
        # A lock either follows this key's reservation or is taken directly.
        conn.execute(
            "INSERT INTO history (resource_id, key, kind, holder_id, holder_url, locked_at)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET kind=excluded.kind,"
            " holder_id=excluded.holder_id, holder_url=excluded.holder_url,"
            " locked_at=excluded.locked_at",
            (event.resource.id, hold.key, "locked", hold.holder.id, hold.holder.url, hold.since),
        )
    elif event.type in HOLD_ENDING:
        ended = hold.expires if event.type is EventType.EXPIRED else now
        conn.execute(
            "UPDATE history SET ended_at=?, end_reason=? WHERE key=? AND ended_at IS NULL",
            (ended, event.reason, hold.key),
        )


_STOP = object()


class Store:
    """The SQLite database in the state directory, written by one thread."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc

    def load(self) -> list[Resource]:
        """Every stored resource with its hold. Call before ``start``."""
        rows = self._conn.execute("SELECT * FROM resources ORDER BY id").fetchall()
        return [_row_resource(r) for r in rows]

    def start(self) -> None:
        """Start the writer thread; futures resolve on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def write(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Queue events to be committed; the future resolves once they are on disk."""
        return self.call(lambda conn: self._write_all(conn, events))

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn`` on the writer thread, in order with writes, inside a group."""
        assert self._loop is not None, "Store.start() was not called"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, future))
        return future

    async def history(self, resource_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The latest ``limit`` holds of a resource, newest first."""

        def query(conn: sqlite3.Connection) -> list[HistoryEntry]:
            rows = conn.execute(
                "SELECT * FROM history WHERE resource_id=? ORDER BY seq DESC LIMIT ?",
                (resource_id, limit),
            ).fetchall()
            return [
                HistoryEntry(
                    kind=r["kind"],
                    holder=Holder(r["holder_id"], r["holder_url"]),
                    reserved_at=r["reserved_at"],
                    locked_at=r["locked_at"],
                    ended_at=r["ended_at"],
                    end_reason=r["end_reason"],
                )
                for r in rows
            ]

        return await self.call(query)

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the database."""
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        self._conn.close()

    def _write_all(self, conn: sqlite3.Connection, events: Sequence[Event]) -> None:
        now = self._clock()
        for event in events:
            _apply(conn, event, now)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stop = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any]]) -> None:
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                # A savepoint per item: one bad item fails alone, not its group.
                self._conn.execute("SAVEPOINT item")
                try:
                    value = fn(self._conn)
                except Exception as exc:
                    self._conn.execute("ROLLBACK TO item")
                    results.append((future, None, exc))
                else:
                    results.append((future, value, None))
                self._conn.execute("RELEASE item")
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("committing %d changes to %s failed: %s", len(batch), self.path, exc)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            results = [(future, None, StoreError(f"commit failed: {exc}")) for _, future in batch]
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_resolve_all, results)


def _resolve_all(results: list[tuple[Any, Any, BaseException | None]]) -> None:
    for future, value, exc in results:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

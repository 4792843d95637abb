"""Durable state in SQLite: every resource as its latest snapshot, plus a log of changes.

One writer thread owns the connection and commits in groups: it takes every
change queued while the previous commit was on disk and commits them together,
so 32 clients cost one fsync rather than 32, and the event loop never waits on
the disk. A change's future resolves only after its group is committed; the
caller answers the client after that. The queue is FIFO, so a change is never
acknowledged before a change it depended on. The one listener ``on_commit``
names hears each group once, on the event loop, before any of its futures
resolves: one wake-up of the loop and one call per group, not per change.

Rows are built on the caller's thread and a group is written with two
``executemany`` calls (snapshots, then log lines): each separate SQLite call
would hand the GIL back and forth with the event loop, and those hand-offs,
not the disk, are what limits a Python writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agent import records
from agent.model import ActionEntry, Event, HistoryEntry, Resource

log = logging.getLogger(__name__)

T = TypeVar("T")
# A group's writes as on_commit hears them: each one's events, and why it failed (None: on disk).
Committed = list[tuple[Sequence[Event], BaseException | None]]


class StoreError(Exception):
    """The state directory or database cannot be used."""


_STOP = object()


class Store:
    """The SQLite database in the state directory, written by one thread."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float],
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        # observe_commit(seconds): each group's commit time, on the writer thread (metrics).
        self.path = path
        self._clock = clock
        self._observe_commit = observe_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._listener: Callable[[Committed], None] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            records.migrate(self._conn)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc

    def load(self) -> list[Resource]:
        """Every stored resource with its hold. Call before ``start``."""
        try:
            rows = self._conn.execute("SELECT * FROM resources ORDER BY id").fetchall()
            return [records.row_resource(r) for r in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            # A damaged file, or one written by a newer agent (a kind this one lacks).
            raise StoreError(f"cannot read the state database {self.path}: {exc}") from exc

    async def __aenter__(self) -> Store:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the writer thread; futures resolve on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def on_commit(self, listener: Callable[[Committed], None]) -> None:
        """Have ``listener`` hear each group's writes, in commit order, before they resolve."""
        self._listener = listener

    def write(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Queue events to be committed; the future resolves once they are on disk."""
        return self._submit(records.rows(events, self._clock()))

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn`` on the writer thread, in order with the writes."""
        return self._submit(fn)

    async def history(self, resource_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The latest ``limit`` holds of a resource, newest first."""

        def query(conn: sqlite3.Connection) -> list[HistoryEntry]:
            # A hold has at most three such lines (reserved, locked, ended).
            marks = ",".join("?" * len(records.HOLD_EVENTS))
            rows = conn.execute(
                "SELECT * FROM (SELECT * FROM hold_log WHERE resource_id=?"
                f" AND event IN ({marks}) ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (resource_id, *records.HOLD_EVENTS, limit * 3 + 2),
            ).fetchall()
            return records.fold_history(rows, limit)

        return await self.call(query)

    async def actions(self, resource_id: str, limit: int = 100) -> list[ActionEntry]:
        """The latest ``limit`` changes to a resource, newest first."""

        def query(conn: sqlite3.Connection) -> list[ActionEntry]:
            rows = conn.execute(
                "SELECT * FROM hold_log WHERE resource_id=? ORDER BY seq DESC LIMIT ?",
                (resource_id, limit),
            ).fetchall()
            return [records.row_action(row) for row in rows]

        return await self.call(query)

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the database."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        self._conn.close()

    def _submit(self, item: Any) -> asyncio.Future[Any]:
        assert self._loop is not None, "Store.start() was not called"
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._closed:
            # Nobody would ever take it from the queue: fail now, not hang.
            future.set_exception(StoreError(f"the state database {self.path} is closed"))
        else:
            self._queue.put((item, future))
        return future

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

    def _commit(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        started = time.perf_counter()
        try:
            results = self._transaction(batch)
        except Exception as exc:
            # Not only sqlite3.Error: binding a value SQLite can't take (a str
            # with a lone surrogate, an int over 64 bits) raises others, and
            # the writer thread must outlive any one bad change.
            if len(batch) == 1:
                results = [self._failed(batch[0], exc)]
            else:
                # Find the culprit: each item alone, so only a bad one fails.
                results = [r for item in batch for r in self._commit_alone(item)]
        if self._observe_commit is not None:
            self._observe_commit(time.perf_counter() - started)
        assert self._loop is not None
        writes: Committed = [
            (entry[0].events, result[2])
            for entry, result in zip(batch, results, strict=True)
            if isinstance(entry[0], records.Rows)
        ]
        self._loop.call_soon_threadsafe(self._resolve, writes, results)

    def _resolve(self, writes: Committed, results: list[Any]) -> None:
        try:
            if self._listener is not None and writes:
                self._listener(writes)
        finally:
            _resolve_all(results)

    def _commit_alone(self, item: tuple[Any, asyncio.Future[Any]]) -> list[Any]:
        try:
            return self._transaction([item])
        except Exception as exc:
            return [self._failed(item, exc)]

    def _failed(self, item: tuple[Any, asyncio.Future[Any]], exc: Exception) -> tuple[Any, ...]:
        log.error("committing to %s failed: %s", self.path, exc)
        return (item[1], None, StoreError(f"commit failed: {exc}"))

    def _transaction(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> list[Any]:
        conn = self._conn
        results: list[Any] = []
        resources: dict[str, tuple[Any, ...]] = {}
        lines: list[tuple[Any, ...]] = []
        removed: set[str] = set()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item, future in batch:
                if isinstance(item, records.Rows):
                    for rid in item.removed:
                        resources.pop(rid, None)
                    removed = (removed - item.resources.keys()) | item.removed
                    resources.update(item.resources)
                    lines.extend(item.log)
                    results.append((future, None, None))
                    continue
                # A read or other call sees every write queued before it.
                self._flush(resources, lines, removed)
                # A savepoint, so a call that fails leaves none of its writes.
                conn.execute("SAVEPOINT call")
                try:
                    results.append((future, item(conn), None))
                except Exception as exc:
                    conn.execute("ROLLBACK TO call")
                    results.append((future, None, exc))
                conn.execute("RELEASE call")
            self._flush(resources, lines, removed)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _flush(
        self,
        resources: dict[str, tuple[Any, ...]],
        lines: list[tuple[Any, ...]],
        removed: set[str],
    ) -> None:
        if removed:
            self._conn.executemany(records.DELETE_RESOURCE, [(rid,) for rid in removed])
            removed.clear()
        if resources:
            self._conn.executemany(records.UPSERT_RESOURCE, resources.values())
            resources.clear()
        if lines:
            self._conn.executemany(records.INSERT_LOG, lines)
            lines.clear()


def _resolve_all(results: list[tuple[Any, Any, BaseException | None]]) -> None:
    for future, value, exc in results:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

"""Durable state in SQLite: every resource as its latest snapshot, plus a log of changes.

One writer thread owns the connection and commits in groups: it takes every
change queued while the previous commit was on disk and commits them together,
so 32 clients cost one fsync rather than 32, and the event loop never waits on
the disk. A change's future resolves only after its group is committed; the
caller answers the client after that. The queue is FIFO, so a change is never
acknowledged before a change it depended on. The one listener ``on_commit``
names hears each group once, on the event loop, before any of its futures
resolves: one wake-up of the loop and one call per group, not per change.

A write that cannot be committed (a full or read-only disk, an I/O error)
fails with ``CommitFailed``, and so does every write queued after it in the
same *generation*: they were built on a state that may not have reached the
disk. A failure after SQLite may have written the commit (a failed fsync) is
marked uncertain (agent/store_errors.py), and so is every write of a group
whose commit failed so, unless it is then committed alone.
The owner of that state (the authority) rolls it back to what is on disk and
calls ``reset``; writes of the new generation are tried again. While writes
fail, ``problem`` says why, and the writer tries a small write every
``PROBE_EVERY`` seconds, so the problem clears once the disk takes writes
again even if nobody changes anything.

Rows are built on the caller's thread and a group is written with two
``executemany`` calls (snapshots, then log lines): each separate SQLite call
would hand the GIL back and forth with the event loop, and those hand-offs,
not the disk, are what limits a Python writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from agent import records
from agent.model import ActionEntry, Event, HistoryEntry, Resource
from agent.store_errors import CommitFailed, CommitUncertain, StoreError, commit, explain

log = logging.getLogger(__name__)

T = TypeVar("T")
# A group's writes as on_commit hears them: each one's events, and why it failed (None: on disk).
Committed = list[tuple[Sequence[Event], BaseException | None]]

PROBE_EVERY = 1.0  # seconds between test writes while the disk refuses writes
# Groups between checkpoints of the WAL into the database. SQLite's own, run
# inside COMMIT, would fail a COMMIT that is on disk when the checkpoint fails.
CHECKPOINT_EVERY = 128


class _Entry(NamedTuple):
    item: Any  # records.Rows (a write) or a callable (a call)
    future: asyncio.Future[Any]
    generation: int


_STOP = object()


class Store:
    """The SQLite database in the state directory, written by one thread."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float],
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        # clock: what log lines are stamped with (build_core gives it the agent's clock once
        # it has read its anchor from here); observe_commit(seconds): each group's commit
        # time, on the writer thread (metrics).
        self.path = path
        self.clock = clock
        self._observe_commit = observe_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._listener: Callable[[Committed], None] | None = None
        self.generation = 0  # the event loop's; see reset()
        self._failed_generation = -1  # the writer thread's: writes up to it fail
        self._failure = ""
        self._problem: str | None = None
        self._groups = 0  # committed since the last checkpoint
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
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

    def read_meta(self, name: str) -> str | None:
        """A value of the ``meta`` table, or None. Call before ``start``."""
        row = self._conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def latest_time(self) -> float | None:
        """When the last logged change was made (None: never). Call before ``start``."""
        row = self._conn.execute("SELECT at FROM hold_log ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def write_meta(self, name: str, value: str) -> None:
        """Set a value of the ``meta`` table, durably. Call before ``start``."""
        try:
            self._conn.execute(records.SET_META, (name, value))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the state database {self.path}: {exc}") from exc

    @property
    def problem(self) -> str | None:
        """Why writes fail now (the state directory and the reason), or None."""
        return self._problem

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
        return self._submit(records.rows(events, self.clock()))

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn`` on the writer thread, in order with the writes."""
        return self._submit(fn)

    def reset(self) -> None:
        """The state later writes are built on no longer includes the failed ones: try them."""
        self.generation += 1

    async def history(self, resource_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The latest ``limit`` holds of a resource, newest first."""
        return await self.call(functools.partial(records.read_history, rid=resource_id, n=limit))

    async def actions(self, resource_id: str, limit: int = 100) -> list[ActionEntry]:
        """The latest ``limit`` changes to a resource, newest first."""
        return await self.call(functools.partial(records.read_actions, rid=resource_id, n=limit))

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
            self._queue.put(_Entry(item, future, self.generation))
        return future

    # ------------------------------------------------------- the writer thread

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=PROBE_EVERY if self._problem else None)
            except queue.Empty:
                self._probe()
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stop = True
                batch = [entry for entry in batch if entry is not _STOP]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Entry]) -> None:
        started = time.perf_counter()
        doomed = [self._doomed(entry) for entry in batch]
        tried = [entry for entry, fails in zip(batch, doomed, strict=True) if not fails]
        whole = False  # the group committed as one
        try:
            done = dict(zip(map(id, tried), self._transaction(tried), strict=True))
        except Exception as exc:
            # One at a time, in order: what came before a failed write is saved,
            # what came after it in its generation is not (it may depend on it).
            # If the group may be on disk, so may each write that then fails alone.
            uncertain = isinstance(exc, CommitUncertain)
            done = {id(entry): self._commit_alone(entry, uncertain) for entry in tried}
        else:
            self._writable(tried)
            whole = True
        results = [
            self._failed(entry, self._failure) if fails else done[id(entry)]
            for entry, fails in zip(batch, doomed, strict=True)
        ]
        if self._observe_commit is not None:
            self._observe_commit(time.perf_counter() - started)
        assert self._loop is not None
        writes: Committed = [
            (entry.item.events, result[2])
            for entry, result in zip(batch, results, strict=True)
            if isinstance(entry.item, records.Rows)
        ]
        self._loop.call_soon_threadsafe(self._resolve, writes, results)
        if whole:  # after the answers are on their way: they need not wait for the copy
            self._checkpoint()

    def _resolve(self, writes: Committed, results: list[Any]) -> None:
        try:
            if self._listener is not None and writes:
                self._listener(writes)
        finally:
            _resolve_all(results)

    def _doomed(self, entry: _Entry) -> bool:
        """A write queued after a failed one of its generation: it is not tried."""
        return isinstance(entry.item, records.Rows) and entry.generation <= self._failed_generation

    def _commit_alone(self, entry: _Entry, uncertain: bool) -> tuple[Any, ...]:
        if self._doomed(entry):
            return self._failed(entry, self._failure, uncertain)
        try:
            (result,) = self._transaction([entry])
        except Exception as exc:
            # Not only sqlite3.Error: binding a value SQLite can't take (a str
            # with a lone surrogate, an int over 64 bits) raises others, and
            # the writer thread must outlive any one bad change.
            known = self._problem is not None  # this spell of trouble was logged already
            reason = self._explain(exc)
            log.log(logging.DEBUG if known else logging.ERROR, "cannot save a change: %s", reason)
            uncertain = uncertain or isinstance(exc, CommitUncertain)
            if isinstance(entry.item, records.Rows):
                self._failed_generation = max(self._failed_generation, entry.generation)
                self._failure = f"{reason}; a change queued before this one was not saved"
            return self._failed(entry, reason, uncertain)
        self._writable([entry])
        return result

    def _failed(self, entry: _Entry, reason: str, uncertain: bool = False) -> tuple[Any, ...]:
        error = CommitFailed(reason, entry.generation, uncertain=uncertain)
        return (entry.future, None, error)

    def _writable(self, entries: list[_Entry]) -> None:
        """A write was committed: whatever kept the disk from taking writes is over."""
        if self._problem is not None and any(isinstance(e.item, records.Rows) for e in entries):
            self._recovered()

    def _probe(self) -> None:
        """A small write while writes fail: the disk may take them again."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(records.SET_META, ("probe", repr(self.clock())))
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            _roll_back(self._conn)
            return
        self._recovered()

    def _recovered(self) -> None:
        log.warning("the state directory %s takes writes again", self.path.parent)
        self._problem = None

    def _explain(self, exc: Exception) -> str:
        """Why a commit failed, naming the state directory; disk trouble stays in ``problem``."""
        reason = explain(exc, self.path.parent)
        if isinstance(exc, sqlite3.Error | OSError | CommitUncertain):
            self._problem = reason
        return reason

    def _checkpoint(self) -> None:
        """Copy the WAL into the database now and then, and after every group until it
        is all copied: only then does SQLite write the WAL from its start again, and a
        WAL never copied back grows until the disk is full. A failure loses nothing."""
        self._groups += 1
        if self._groups < CHECKPOINT_EVERY:
            return
        try:
            busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.debug("cannot checkpoint the state database %s yet: %s", self.path, exc)
            return
        if not busy and copied == frames:
            self._groups = 0

    def _transaction(self, batch: list[_Entry]) -> list[tuple[Any, ...]]:
        conn = self._conn
        results: list[tuple[Any, ...]] = []
        resources: dict[str, tuple[Any, ...]] = {}
        lines: list[tuple[Any, ...]] = []
        removed: set[str] = set()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item, future, _ in batch:
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
            commit(conn)
        except BaseException:
            _roll_back(conn)
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


def _roll_back(conn: sqlite3.Connection) -> None:
    # After an I/O error SQLite may have rolled back already, or fail to: either way
    # the connection must leave the transaction, or no later one could begin.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _resolve_all(results: list[tuple[Any, ...]]) -> None:
    for future, value, exc in results:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

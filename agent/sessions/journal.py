"""Every session's record and log: kept in the store, bounded, and followed while it runs.

A session's log is what its steps did -- each step's start, its output line
by line, its end -- with timestamps. Lines are kept in memory while the
session is live (for followers) and written to the store in small batches
(nobody waits on them: a log line is not an acknowledged change). Each log
keeps its last ``MAX_LINES`` lines; the store keeps the last ``MAX_SESSIONS``
sessions, the oldest dropped first.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agent.model import Holder, isotime
from agent.store import Store

log = logging.getLogger(__name__)

MAX_LINES = 2000  # per session
MAX_SESSIONS = 500  # in the store
LIVE = 50  # ended sessions whose log stays in memory too
FLUSH = 0.2  # seconds between writes of new lines

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    resource_id TEXT NOT NULL,
    holder_id TEXT NOT NULL,
    holder_url TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    failed_step TEXT,
    message TEXT,
    packages TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_resource ON sessions (resource_id, started);
CREATE TABLE IF NOT EXISTS session_lines (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""


class Status(enum.StrEnum):
    """Where a session is."""

    PROVISIONING = "provisioning"
    READY = "ready"  # provisioned; the holder has it
    FAILED = "failed"  # provisioning failed
    CLEANING = "cleaning"
    CLEAN = "clean"  # torn down: the resource went back to the pool
    DIRTY = "dirty"  # teardown failed: the resource waits for an administrator

    @property
    def phase(self) -> str:
        """``provision`` or ``teardown``: which half of the session this is in."""
        return "teardown" if self in TEARDOWN else "provision"


TEARDOWN = frozenset({Status.CLEANING, Status.CLEAN, Status.DIRTY})
RUNNING = frozenset({Status.PROVISIONING, Status.CLEANING})


@dataclass(frozen=True, slots=True)
class Record:
    """One session as it is now."""

    id: str
    resource_id: str
    holder: Holder
    status: Status
    started: float
    updated: float
    failed_step: str | None = None
    message: str | None = None
    packages: frozenset[str] | None = None  # third-party packages at the start


def _row(rec: Record) -> tuple[Any, ...]:
    packages = None if rec.packages is None else json.dumps(sorted(rec.packages))
    return (rec.id, rec.resource_id, rec.holder.id, rec.holder.url, rec.status.value,
            rec.started, rec.updated, rec.failed_step, rec.message, packages)  # fmt: skip


def _record(row: sqlite3.Row) -> Record:
    packages = row["packages"]
    return Record(
        id=row["id"],
        resource_id=row["resource_id"],
        holder=Holder(row["holder_id"], row["holder_url"]),
        status=Status(row["status"]),
        started=row["started"],
        updated=row["updated"],
        failed_step=row["failed_step"],
        message=row["message"],
        packages=None if packages is None else frozenset(json.loads(packages)),
    )


@dataclass
class Live:
    """A session whose log is in memory: its record, its lines, and who follows it."""

    record: Record
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    seq: int = 0  # lines written in all (the deque keeps the last MAX_LINES)
    unsaved: list[tuple[int, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines."""
        return list(self.lines)[-count:]


class Journal:
    """The sessions' records and logs, live and past."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._live: dict[str, Live] = {}
        self._flusher: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        """Create the tables if this database has none yet."""
        await self._store.call(_create)

    async def close(self) -> None:
        """Write what is not written yet."""
        await self._flush()

    # ------------------------------------------------------------- writing

    def begin(self, resource_id: str, holder: Holder, status: Status) -> Live:
        """A new session, in ``status``."""
        now = self._clock()
        record = Record(secrets.token_hex(8), resource_id, holder, status, now, now)
        live = Live(record)
        self._live[record.id] = live
        self._save(record, prune=True)
        self._forget_old()
        return live

    async def resume(self, record: Record) -> Live:
        """A session from the store, live again (its log goes on where it ended)."""
        live = self._live.get(record.id)
        if live is not None:
            return live

        kept = await self._store.call(functools.partial(_numbered_lines, sid=record.id))
        live = Live(record, deque((text for _, text in kept), maxlen=MAX_LINES))
        live.seq = kept[-1][0] if kept else 0
        self._live[record.id] = live
        return live

    def line(self, live: Live, text: str) -> None:
        """Add one line to the log, stamped with the time."""
        stamped = f"{isotime(self._clock())} {text}"
        live.lines.append(stamped)
        live.seq += 1
        live.unsaved.append((live.seq, stamped))
        live.changed.set()
        live.changed = asyncio.Event()
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(FLUSH, self._flush_soon)

    def update(self, live: Live, **changes: Any) -> None:
        """Change the record (status, failed_step, message, packages) and save it."""
        live.record = replace(live.record, updated=self._clock(), **changes)
        live.changed.set()
        live.changed = asyncio.Event()
        self._save(live.record)

    def _save(self, record: Record, prune: bool = False) -> None:
        lines = None  # taken now, so the row and its lines go in one transaction
        live = self._live.get(record.id)
        if live is not None and live.unsaved:
            lines, live.unsaved = live.unsaved, []

        write = functools.partial(_save_record, row=_row(record), lines=lines, prune=prune)
        self._background(self._store.call(write))

    def _flush_soon(self) -> None:
        self._flusher = None
        self._background(asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        batches = {sid: live.unsaved for sid, live in self._live.items() if live.unsaved}
        for live in self._live.values():
            live.unsaved = []
        if batches:
            await self._store.call(functools.partial(_save_lines, batches=batches))

    def _background(self, future: asyncio.Future[Any]) -> None:
        future.add_done_callback(_log_failure)

    def _forget_old(self) -> None:
        ended = [s for s, live in self._live.items() if live.record.status not in RUNNING]
        for sid in ended[: max(0, len(ended) - LIVE)]:
            if not self._live[sid].unsaved:
                del self._live[sid]

    # ------------------------------------------------------------- reading

    def live(self, session_id: str) -> Live | None:
        """The session if its log is in memory."""
        return self._live.get(session_id)

    async def find(
        self, resource_id: str | None = None, holder: str | None = None, limit: int = 50
    ) -> list[Record]:
        """Sessions, newest first; ``holder`` matches a holder's url or its id + url."""
        await self._flush()

        query = functools.partial(_find, resource_id=resource_id, holder=holder, limit=limit)
        found = await self._store.call(query)
        # The in-memory record is newer than the row its write may still be queued for.
        return [self._live[r.id].record if r.id in self._live else r for r in found]

    async def get(self, session_id: str) -> Record | None:
        """One session, or None."""
        if session_id in self._live:
            return self._live[session_id].record

        return await self._store.call(functools.partial(_get, sid=session_id))

    async def lines(self, session_id: str) -> list[str]:
        """The session's log as kept."""
        live = self._live.get(session_id)
        if live is not None:
            return list(live.lines)
        await self._flush()

        return [text for _, text in await self._store.call(
            functools.partial(_numbered_lines, sid=session_id)
        )]  # fmt: skip

    async def follow(self, session_id: str) -> AsyncIterator[str]:
        """The log so far, then each new line, until the phase it was in ends."""
        live = self._live.get(session_id)
        if live is None:
            for text in await self.lines(session_id):
                yield text
            return
        phase = live.record.status.phase
        sent = max(0, live.seq - len(live.lines))
        while True:
            changed = live.changed
            count = min(live.seq - sent, len(live.lines))
            new = list(live.lines)[len(live.lines) - count :] if count else []
            sent = live.seq
            for text in new:
                yield text
            if live.record.status.phase != phase or live.record.status not in RUNNING:
                return
            await changed.wait()


# What the journal runs in the store's writer (agent/store.py: a call crosses to its
# process, so it is a module's function, bound with functools.partial).


def _create(conn: sqlite3.Connection) -> None:
    # One statement at a time: executescript would commit the writer's transaction.
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _numbered_lines(conn: sqlite3.Connection, sid: str) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT seq, line FROM session_lines WHERE session_id = ? ORDER BY seq", (sid,)
    )
    return [(r[0], r[1]) for r in rows]


def _save_record(
    conn: sqlite3.Connection, row: tuple[Any, ...], lines: list[tuple[int, str]] | None, prune: bool
) -> None:
    conn.execute("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)", row)
    if lines:
        _insert_lines(conn, row[0], lines)
    if prune:
        _prune(conn)


def _save_lines(conn: sqlite3.Connection, batches: dict[str, list[tuple[int, str]]]) -> None:
    for sid, lines in batches.items():
        _insert_lines(conn, sid, lines)


def _find(
    conn: sqlite3.Connection, resource_id: str | None, holder: str | None, limit: int
) -> list[Record]:
    sql, args = "SELECT * FROM sessions", []
    where = []
    if resource_id is not None:
        where.append("resource_id = ?")
        args.append(resource_id)
    if holder is not None:
        where.append("(holder_url = ? OR holder_id || holder_url = ?)")
        args += [holder, holder]
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started DESC LIMIT ?"
    return [_record(r) for r in conn.execute(sql, (*args, limit))]


def _get(conn: sqlite3.Connection, sid: str) -> Record | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
    return None if row is None else _record(row)


def _insert_lines(conn: sqlite3.Connection, sid: str, lines: list[tuple[int, str]]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO session_lines VALUES (?,?,?)",
        [(sid, seq, text) for seq, text in lines],
    )
    conn.execute(
        "DELETE FROM session_lines WHERE session_id = ? AND seq <= ?",
        (sid, lines[-1][0] - MAX_LINES),
    )


def _prune(conn: sqlite3.Connection) -> None:
    old = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM sessions ORDER BY started DESC LIMIT -1 OFFSET ?", (MAX_SESSIONS,)
        )
    ]
    for sid in old:
        conn.execute("DELETE FROM session_lines WHERE session_id = ?", (sid,))
        conn.execute("DELETE FROM sessions WHERE id = ?", (sid,))


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("cannot save a session log: %s", future.exception())

"""Durable state in SQLite: every resource as its latest snapshot, plus a log of changes.

The agent reads the database at start on a connection of its own; from then
on every write goes to the writer, a process of its own (agent/store_writer.py
says why and how it commits in groups). A change's future resolves only after
its group is committed; the caller answers the client after that. Entries are
sent in the order they were queued, so a change is never acknowledged before a
change it depended on. What one turn of the event loop queues goes out in one
frame. The one listener ``on_commit`` names hears each group once, on the
event loop, before any of its futures resolves.

A write that cannot be committed fails with ``CommitFailed`` (see the writer
for which writes fail with it, and when they are *uncertain*). The owner of
that state (the authority) rolls it back to what is on disk and calls
``reset``; writes of the new generation are tried again. While writes fail,
``problem`` says why. If the writer process itself dies, what it had not
answered is uncertain, and a new writer is started.

Rows are built on the event loop, once, so the writer only executes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from agent import records
from agent.model import ActionEntry, Event, HistoryEntry, Resource
from agent.store_errors import CommitFailed, StoreError
from agent.store_writer import PROBE_EVERY, Done, Problem, frame, unframe

log = logging.getLogger(__name__)

T = TypeVar("T")
# A group's writes as on_commit hears them: each one's events, and why it failed (None: on disk).
Committed = list[tuple[Sequence[Event], BaseException | None]]

# How the writer process is started: -c, not -m, so that the classes it unpickles
# are the ones its code checks against (under -m its module would be __main__).
# It imports from where the agent does, in the same order (the agent's sys.path,
# its last argument), for the classes and calls it unpickles.
WRITER = (
    "-P",
    "-c",
    "import json, sys; sys.path[:] = json.loads(sys.argv.pop());"
    " from agent.store_writer import serve; serve()",
)


class Store:
    """The SQLite database in the state directory, written by the writer process."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float],
        observe_commit: Callable[[float], None] | None = None,
        keep_fds: Sequence[int] = (),
    ) -> None:
        # clock: what log lines are stamped with (build_core gives it the agent's clock once
        # it has read its anchor from here); observe_commit(seconds): each group's commit
        # time, on the event loop (metrics); keep_fds: descriptors the writer holds too
        # (the state lock: no other agent starts while a writer of this one lives).
        self.path = path
        self.clock = clock
        self._observe_commit = observe_commit
        self._keep_fds = tuple(keep_fds)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: _Link | None = None
        self._closed = False
        self._listener: Callable[[Committed], None] | None = None
        self.generation = 0  # see reset()
        self._problem: str | None = None
        self._seq = 0
        self._outbox: list[tuple[int, int, Any]] = []  # queued, not sent yet
        # Sent or queued, by seq: the future, the generation, the events (None: a call).
        self._pending: dict[int, tuple[asyncio.Future[Any], int, Sequence[Event] | None]] = {}
        self._respawn: asyncio.TimerHandle | None = None
        self._spawning: asyncio.Future[None] | None = None  # a new writer on its way
        self._born = 0.0  # when the writer was started (loop time)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            records.migrate(self._conn)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        assert self._conn is not None, "read before Store.start()"
        return self._conn

    def load(self) -> list[Resource]:
        """Every stored resource with its hold. Call before ``start``."""
        try:
            rows = self._reader().execute("SELECT * FROM resources ORDER BY id").fetchall()
            return [records.row_resource(r) for r in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            # A damaged file, or one written by a newer agent (a kind this one lacks).
            raise StoreError(f"cannot read the state database {self.path}: {exc}") from exc

    def read_meta(self, name: str) -> str | None:
        """A value of the ``meta`` table, or None. Call before ``start``."""
        row = self._reader().execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def latest_time(self) -> float | None:
        """When the last logged change was made (None: never). Call before ``start``."""
        sql = "SELECT at FROM hold_log ORDER BY seq DESC LIMIT 1"
        row = self._reader().execute(sql).fetchone()
        return None if row is None else float(row[0])

    def write_meta(self, name: str, value: str) -> None:
        """Set a value of the ``meta`` table, durably. Call before ``start``."""
        try:
            self._reader().execute(records.SET_META, (name, value))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the state database {self.path}: {exc}") from exc

    @property
    def problem(self) -> str | None:
        """Why writes fail now (the state directory and the reason), or None."""
        return self._problem

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the writer; futures resolve on the running loop."""
        self._loop = asyncio.get_running_loop()
        if self._conn is not None:
            self._conn.close()  # from now on the writer's is the only connection
            self._conn = None
        await self._spawn()

    def on_commit(self, listener: Callable[[Committed], None]) -> None:
        """Have ``listener`` hear each group's writes, in commit order, before they resolve."""
        self._listener = listener

    def write(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Queue events to be committed; the future resolves once they are on disk."""
        return self._submit(records.rows(events, self.clock()), events)

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn`` in the writer, in order with the writes. It crosses to the writer's
        process, so it must pickle: a module's function, or a ``functools.partial`` of one."""
        try:
            pickle.dumps(fn)
        except Exception as exc:
            future: asyncio.Future[T] = self._future()
            future.set_exception(StoreError(f"a store call must pickle: {exc}"))
            return future
        return self._submit(fn, None)

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
        if self._respawn is not None:
            self._respawn.cancel()
            self._respawn = None
        if self._spawning is not None:
            await self._spawning
        link = self._link
        if link is not None:
            self._send()
            link.stdin().close()  # the end of its input: it commits what it read and exits
            await link.gone
            # It answers all it read before it exits: what is left, it died with.
            self._fail_all(None, "the store's writer process exited before it answered")
        self._fail_all(StoreError(f"the state database {self.path} is closed"))
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ----------------------------------------------------------- to the writer

    def _future(self) -> asyncio.Future[Any]:
        assert self._loop is not None, "Store.start() was not awaited"
        return self._loop.create_future()

    def _submit(self, item: Any, events: Sequence[Event] | None) -> asyncio.Future[Any]:
        future = self._future()
        if self._closed:
            # Nobody would ever take it: fail now, not hang.
            future.set_exception(StoreError(f"the state database {self.path} is closed"))
            return future
        self._seq += 1
        self._pending[self._seq] = (future, self.generation, events)
        if not self._outbox and self._link is not None:
            self._loop.call_soon(self._send)  # type: ignore[union-attr]
        self._outbox.append((self._seq, self.generation, item))
        return future

    def _send(self) -> None:
        """Everything queued in this turn of the loop, in one frame."""
        if self._outbox and self._link is not None:
            self._link.stdin().write(frame(self._outbox))
            self._outbox = []

    async def _spawn(self) -> None:
        assert self._loop is not None
        self._respawn = None
        try:
            _, link = await self._loop.subprocess_exec(
                functools.partial(_Link, self),
                sys.executable, *WRITER, str(self.path), str(os.getpid()), json.dumps(sys.path),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=self._keep_fds,
                stderr=None,  # its tracebacks, if any, go where the agent's own go
            )  # fmt: skip
        except OSError as exc:
            self._problem = f"cannot start the store's writer process: {exc}"
            log.error("%s; trying again in %.0f s", self._problem, PROBE_EVERY)
            self._respawn = self._loop.call_later(PROBE_EVERY, self._start_again)
            return
        self._link = link
        self._born = self._loop.time()
        self._send()

    def _start_again(self) -> None:
        self._respawn = None
        if not self._closed:
            self._spawning = asyncio.ensure_future(self._spawn())

    # --------------------------------------------------------- from the writer

    def _heard(self, message: Done | Problem) -> None:
        for level, text in message.logs:
            log.log(level, "%s", text)
        self._problem = message.problem
        if isinstance(message, Done):
            if self._observe_commit is not None:
                self._observe_commit(message.seconds)
            self._finish(message.results)

    def _finish(self, results: Sequence[tuple[int, Any, BaseException | None]]) -> None:
        """A group's outcome: the listener hears its writes, then each future resolves."""
        done = [(self._pending.pop(seq), value, exc) for seq, value, exc in results]
        try:
            writes: Committed = [(entry[2], exc) for entry, _, exc in done if entry[2] is not None]
            if self._listener is not None and writes:
                self._listener(writes)
        finally:
            for (future, _, _), value, exc in done:
                if future.cancelled():
                    continue
                if exc is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(value)

    def _lost(self, link: _Link, code: int | None) -> None:
        """The writer exited: at the end of its input, or died (then another is started)."""
        if link is not self._link:
            return
        self._link = None
        if self._closed:
            return
        # What it was sent and did not answer may be on disk or not; what was not sent
        # yet is built on that, so it is not tried either (the owner rolls back).
        reason = f"the store's writer process exited (code {code}) before it answered"
        self._problem = reason  # until a new writer says it runs
        self._outbox = []
        self._fail_all(None, reason)
        assert self._loop is not None
        # One that dies at once (it cannot even start) is not started again at once.
        delay = PROBE_EVERY if self._loop.time() - self._born < PROBE_EVERY else 0.0
        log.error("%s; starting another in %.0f s", reason, delay)
        self._respawn = self._loop.call_later(delay, self._start_again)

    def _fail_all(self, error: BaseException | None, reason: str = "") -> None:
        """Fail every write and call not answered (``error``, or an uncertain CommitFailed)."""
        self._finish(
            [
                (seq, None, error or CommitFailed(reason, generation, uncertain=True))
                for seq, (_, generation, _) in list(self._pending.items())
            ]
        )


class _Link(asyncio.SubprocessProtocol):
    """The pipes to the writer process: frames in, and when it has gone."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._buffer = bytearray()
        self._transport: asyncio.SubprocessTransport | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport is one in all but its class.
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def stdin(self) -> asyncio.WriteTransport:
        assert self._transport is not None
        return cast(asyncio.WriteTransport, self._transport.get_pipe_transport(0))

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert fd == 1 and isinstance(data, bytes)  # its stdout: the only pipe read
        assert self._transport is not None
        self._buffer += data
        try:
            messages = unframe(self._buffer)
        except Exception:
            # A stream that no longer parses cannot be trusted for any answer: end
            # this writer; what it had not answered is uncertain, and another starts.
            log.exception("the store's writer process answered what cannot be read")
            self._transport.kill()
            return
        for message in messages:
            try:
                self._store._heard(message)
            except Exception:  # one group's listener failing must not strand the next
                log.exception("cannot take in a group the store committed")

    def connection_lost(self, exc: Exception | None) -> None:
        # After the process exited and both pipes closed: every answer has been heard.
        assert self._transport is not None
        self._store._lost(self, self._transport.get_returncode())
        self._transport.close()
        if not self.gone.done():
            self.gone.set_result(None)

"""The store's writer: a process of its own that owns the database's one writing connection.

It commits in groups: it takes every change that arrived while the previous
commit was on disk and commits them together, so 32 clients cost one fsync
rather than 32. It is a process, not a thread of the agent, because a thread
shares the agent's GIL: each SQLite call hands it back and forth with the
event loop, and on two cores the waits for it (and for the core that thread
lost meanwhile) made a group take five times its own CPU (docs/benchmarks.md,
"The writer in a process of its own").

A write that cannot be committed (a full or read-only disk, an I/O error)
fails with ``CommitFailed``, and so does every write queued after it in the
same *generation*: they were built on a state that may not have reached the
disk. A failure after SQLite may have written the commit (a failed fsync) is
marked uncertain (agent/store_errors.py), and so is every write of a group
whose commit failed so, unless it is then committed alone. While writes fail,
the writer tries a small write every ``PROBE_EVERY`` seconds, so the problem
clears once the disk takes writes again even if nobody changes anything.

The wire (``serve()``: argv PATH AGENT_PID, stdin and stdout; agent/store.py
starts it): frames of a 4-byte length and a pickle. The agent sends lists of
entries ``(seq, generation, item)``: ``item`` a ``records.Rows`` or a
picklable callable run with the connection (a read, or a write of its own, in
order with the rest). The writer says it runs with a ``Problem`` at start,
answers each group with one ``Done`` and a probe's outcome with a ``Problem``;
both carry the log lines the agent should log. The writer dies with the agent
(``PR_SET_PDEATHSIG``) and stops at the end of its input, after committing
what it read. Only the agent writes its input: pickle is no wider a door here
than the agent's own code.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import select
import signal
import sqlite3
import struct
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from agent.records import DELETE_RESOURCE, INSERT_LOG, SET_META, UPSERT_RESOURCE, Rows
from agent.store_errors import CommitFailed, CommitUncertain, StoreError, commit, explain

PROBE_EVERY = 1.0  # seconds between test writes while the disk refuses writes
# Groups between checkpoints of the WAL into the database. SQLite's own, run
# inside COMMIT, would fail a COMMIT that is on disk when the checkpoint fails.
CHECKPOINT_EVERY = 128

HEADER = struct.Struct("!I")
_PR_SET_PDEATHSIG = 1


class Done(NamedTuple):
    """A group's outcome: ``(seq, value, error)`` for each entry, in order."""

    results: list[tuple[int, Any, BaseException | None]]
    problem: str | None  # why writes fail now, or None
    seconds: float  # how long the group took
    logs: list[tuple[int, str]]  # (level, message) to log in the agent


class Problem(NamedTuple):
    """A probe's outcome while writes failed."""

    problem: str | None
    logs: list[tuple[int, str]]


Entry = tuple[int, int, Any]  # seq, generation, Rows or callable
Result = tuple[int, Any, BaseException | None]


def frame(message: object) -> bytes:
    """``message`` as one frame of the wire."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def unframe(buffer: bytearray) -> list[Any]:
    """Take every whole frame off the front of ``buffer``; answers their messages."""
    messages = []
    start = 0
    while len(buffer) - start >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + size
        if len(buffer) < end:
            break
        messages.append(pickle.loads(memoryview(buffer)[start + HEADER.size : end]))
        start = end
    del buffer[:start]
    return messages


class Writer:
    """The writing connection and the rules of a group's commit (no I/O but SQLite's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        self.logs: list[tuple[int, str]] = []
        self._failed_generation = -1  # writes up to it fail
        self._failure = ""
        self._groups = 0  # committed since the last checkpoint
        self._whole = False  # the last group committed as one
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row  # what the calls' queries read by name
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA wal_autocheckpoint=0")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def commit(self, batch: list[Entry]) -> Done:
        """Commit a group; a write that fails is tried alone, in order."""
        started = time.perf_counter()
        doomed = [self._doomed(entry) for entry in batch]
        tried = [entry for entry, fails in zip(batch, doomed, strict=True) if not fails]
        whole = False  # the group committed as one
        try:
            done = dict(zip((e[0] for e in tried), self._transaction(tried), strict=True))
        except Exception as exc:
            # One at a time, in order: what came before a failed write is saved,
            # what came after it in its generation is not (it may depend on it).
            # If the group may be on disk, so may each write that then fails alone.
            uncertain = isinstance(exc, CommitUncertain)
            done = {entry[0]: self._commit_alone(entry, uncertain) for entry in tried}
        else:
            self._writable(tried)
            whole = True
        results = [
            self._failed(entry, self._failure) if fails else done[entry[0]]
            for entry, fails in zip(batch, doomed, strict=True)
        ]
        self._whole = whole
        logs, self.logs = self.logs, []
        return Done(results, self.problem, time.perf_counter() - started, logs)

    def checkpoint(self) -> None:
        """After a group that committed whole: copy the WAL into the database now and
        then, and after every group until it is all copied: only then does SQLite write
        the WAL from its start again, and a WAL never copied back grows until the disk
        is full. A failure loses nothing."""
        if not self._whole:
            return
        self._groups += 1
        if self._groups < CHECKPOINT_EVERY:
            return
        try:
            busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return  # tried again after the next group
        if not busy and copied == frames:
            self._groups = 0

    def probe(self) -> Problem:
        """A small write while writes fail: the disk may take them again."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(SET_META, ("probe", repr(time.time())))
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            _roll_back(self._conn)
        else:
            self._recovered()
        logs, self.logs = self.logs, []
        return Problem(self.problem, logs)

    def _doomed(self, entry: Entry) -> bool:
        """A write queued after a failed one of its generation: it is not tried."""
        return isinstance(entry[2], Rows) and entry[1] <= self._failed_generation

    def _commit_alone(self, entry: Entry, uncertain: bool) -> Result:
        if self._doomed(entry):
            return self._failed(entry, self._failure, uncertain)
        try:
            (result,) = self._transaction([entry])
        except Exception as exc:
            # Not only sqlite3.Error: binding a value SQLite can't take (a str
            # with a lone surrogate, an int over 64 bits) raises others, and
            # the writer must outlive any one bad change.
            known = self.problem is not None  # this spell of trouble was logged already
            reason = self._explain(exc)
            level = logging.DEBUG if known else logging.ERROR
            self.logs.append((level, f"cannot save a change: {reason}"))
            uncertain = uncertain or isinstance(exc, CommitUncertain)
            if isinstance(entry[2], Rows):
                self._failed_generation = max(self._failed_generation, entry[1])
                self._failure = f"{reason}; a change queued before this one was not saved"
            return self._failed(entry, reason, uncertain)
        self._writable([entry])
        return result

    def _failed(self, entry: Entry, reason: str, uncertain: bool = False) -> Result:
        return (entry[0], None, CommitFailed(reason, entry[1], uncertain=uncertain))

    def _writable(self, entries: list[Entry]) -> None:
        """A write was committed: whatever kept the disk from taking writes is over."""
        if self.problem is not None and any(isinstance(e[2], Rows) for e in entries):
            self._recovered()

    def _recovered(self) -> None:
        text = f"the state directory {self.path.parent} takes writes again"
        self.logs.append((logging.WARNING, text))
        self.problem = None

    def _explain(self, exc: Exception) -> str:
        """Why a commit failed, naming the state directory; disk trouble stays in ``problem``."""
        reason = explain(exc, self.path.parent)
        if isinstance(exc, sqlite3.Error | OSError | CommitUncertain):
            self.problem = reason
        return reason

    def _transaction(self, batch: list[Entry]) -> list[Result]:
        conn = self._conn
        results: list[Result] = []
        resources: dict[str, tuple[Any, ...]] = {}
        lines: list[tuple[Any, ...]] = []
        removed: set[str] = set()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for seq, _, item in batch:
                if isinstance(item, Rows):
                    for rid in item.removed:
                        resources.pop(rid, None)
                    removed = (removed - item.resources.keys()) | item.removed
                    resources.update(item.resources)
                    lines.extend(item.log)
                    results.append((seq, None, None))
                    continue
                # A read or other call sees every write queued before it.
                self._flush(resources, lines, removed)
                # A savepoint, so a call that fails leaves none of its writes.
                conn.execute("SAVEPOINT call")
                try:
                    results.append((seq, item(conn), None))
                except Exception as exc:
                    conn.execute("ROLLBACK TO call")
                    results.append((seq, None, exc))
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
            self._conn.executemany(DELETE_RESOURCE, [(rid,) for rid in removed])
            removed.clear()
        if resources:
            self._conn.executemany(UPSERT_RESOURCE, resources.values())
            resources.clear()
        if lines:
            self._conn.executemany(INSERT_LOG, lines)
            lines.clear()


def _roll_back(conn: sqlite3.Connection) -> None:
    # After an I/O error SQLite may have rolled back already, or fail to: either way
    # the connection must leave the transaction, or no later one could begin.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _read(fd: int, buffer: bytearray, timeout: float | None) -> list[Entry] | None:
    """The entries of every frame that has arrived, waiting up to ``timeout`` for the
    first (None: for ever); [] when none came in time, None at the end of the input."""
    entries: list[Entry] = []
    wait = timeout
    while True:
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return entries
        data = os.read(fd, 1 << 20)
        if not data:
            return entries or None
        buffer += data
        for message in unframe(buffer):
            entries.extend(message)
        # Whatever else has arrived joins this group; then commit.
        wait = 0.0 if entries else timeout


def _send(fd: int, message: Done | Problem) -> None:
    if isinstance(message, Done) and any(exc is not None for _, _, exc in message.results):
        # An error the agent could not unpickle would break the link: check each one.
        message = message._replace(results=[_picklable(r) for r in message.results])
    try:
        data = frame(message)
    except Exception:  # a call's value that pickle cannot take
        assert isinstance(message, Done)
        data = frame(message._replace(results=[_picklable(r) for r in message.results]))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _picklable(result: Result) -> Result:
    try:
        pickle.loads(pickle.dumps(result))
    except Exception as exc:
        return (result[0], None, StoreError(f"the store cannot answer this call: {exc}"))
    return result


def _die_with(parent: int) -> None:
    """Be killed when the agent dies: a writer left behind would commit what no one
    answered, into a database a restarted agent has loaded already."""
    # Should a sandbox refuse it, the end of the input still stops the writer once
    # its group is done, and the state lock keeps a new agent waiting for that.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def serve() -> None:
    """The writer's main: ``argv`` is the database path and the agent's PID."""
    path, parent = Path(sys.argv[1]), int(sys.argv[2])
    _die_with(parent)
    # The agent says when to stop (the end of the input), after its last answer: a ^C
    # at a terminal, or systemd's SIGTERM to the whole service, reaches this one too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inp = sys.stdin.fileno()
    # The answers get a descriptor of their own; whatever else prints goes to stderr,
    # where it cannot break a frame.
    out = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    writer = Writer(path)
    _send(out, Problem(None, []))  # it runs: the agent's problem with its last writer is over
    buffer = bytearray()
    try:
        while True:
            batch = _read(inp, buffer, PROBE_EVERY if writer.problem else None)
            if batch is None:
                break
            if batch:
                _send(out, writer.commit(batch))
                writer.checkpoint()  # after the answers are on their way
            else:
                _send(out, writer.probe())
    finally:
        writer.close()

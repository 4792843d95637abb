"""Why a write to the state database failed, and whether it may be on disk all the same.

A commit that fails before SQLite writes its commit frame leaves nothing: the
change is certainly not saved. One that fails later -- the fsync of the WAL
reported an error -- may be on disk all the same: the kernel may have written
the frames and committed its journal before it reported the error (a power
cut caught between the two does exactly that). Such a change is *uncertain*:
the answer must not promise that nothing was changed.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

FULL_BELOW = 64 * 1024  # bytes free under which a failed write is put down to a full disk

# Primary SQLite result codes a COMMIT fails with before its commit frame is written.
_SQLITE_READONLY = 8
_SQLITE_FULL = 13
_SQLITE_IOERR_WRITE = 10 | (3 << 8)  # an extended code: the write itself failed


class StoreError(Exception):
    """The state directory or database cannot be used."""


class CommitFailed(StoreError):
    """A write failed; ``generation`` is the one it was queued in.

    ``uncertain``: the failure came after the change may have reached the disk,
    so it may be in effect after a restart; otherwise none of it is saved.
    """

    def __init__(self, message: str, generation: int, *, uncertain: bool = False) -> None:
        super().__init__(message)
        self.generation = generation
        self.uncertain = uncertain

    def __reduce__(self) -> tuple[object, ...]:
        # It crosses from the writer's process (pickled): keep what __init__ takes.
        return (_commit_failed, (str(self), self.generation, self.uncertain))


def _commit_failed(message: str, generation: int, uncertain: bool) -> CommitFailed:
    return CommitFailed(message, generation, uncertain=uncertain)


class CommitUncertain(Exception):
    """COMMIT itself failed in a way that leaves the change perhaps on disk (``cause``)."""

    def __init__(self, cause: sqlite3.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


def commit(conn: sqlite3.Connection) -> None:
    """COMMIT; a failure that may have left the change on disk raises ``CommitUncertain``."""
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or not _before_commit_frame(code):
            raise CommitUncertain(exc) from exc
        raise


def _before_commit_frame(code: int) -> bool:
    """An error COMMIT meets only before its commit frame is written: nothing is saved."""
    return (code & 0xFF) in (_SQLITE_READONLY, _SQLITE_FULL) or code == _SQLITE_IOERR_WRITE


def explain(exc: Exception, directory: Path) -> str:
    """Why a commit failed, naming the state directory and, if it is that, a full or
    read-only file system."""
    if isinstance(exc, CommitUncertain):
        exc = exc.cause
    if not isinstance(exc, sqlite3.Error | OSError):
        return f"cannot save to the state directory {directory}: {exc}"
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    why = f"{exc} ({name})"
    try:
        fs = os.statvfs(directory)
    except OSError:
        pass
    else:
        if fs.f_flag & os.ST_RDONLY:
            why = f"its file system is read-only; {why}"
        elif fs.f_bavail * fs.f_frsize < FULL_BELOW:
            why = f"its file system is full ({fs.f_bavail * fs.f_frsize} bytes free); {why}"
    return f"the state directory {directory} cannot be written: {why}"

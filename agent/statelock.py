"""One agent per state directory: an exclusive ``flock`` on its lock file while the agent runs.

Two agents on one database would each believe their own registry and hand the
same phone to two holders. So the core takes ``agent.lock`` in the state
directory before it opens the database and keeps it until the database is
closed; a second agent finds it taken and refuses to start, naming the PID
the file holds. The kernel drops a ``flock`` with the last descriptor of its
holder, so a lock left by a killed agent never blocks a start; the descriptor
is close-on-exec, so no child process (a session's command) outlives the
agent holding it. The file itself stays: removing it would let a third agent
lock a new file while the second still holds the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from agent.store_errors import StoreError

LOCK_FILE = "agent.lock"
LINGER = 5.0  # seconds a dead agent's writer process may hold the lock on its way out


class StateLocked(StoreError):
    """Another agent runs on this state directory."""


def _pid_in(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _gone(pid: int | None) -> bool:
    """Whether ``pid`` names a process that no longer runs."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _lock(fd: int) -> None:
    """Take the lock, waiting while its holder is the writer of an agent that died."""
    deadline = time.monotonic() + LINGER
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not _gone(_pid_in(fd)) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _who(fd: int) -> str:
    pid = _pid_in(fd)
    return f"PID {pid}" if pid is not None else "PID unknown"


class StateLock:
    """``with StateLock(state_dir):`` -- this process is the directory's one agent meanwhile."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot use the state directory {self.state_dir}: {exc}") from exc
        try:
            _lock(fd)
        except BlockingIOError:
            who = _who(fd)
            os.close(fd)
            raise StateLocked(
                f"another agent ({who}) is running on the state directory {self.state_dir}: "
                "stop it, or give this one its own [agent] state_dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def fileno(self) -> int:
        """The locked descriptor (for a process that must hold the lock too)."""
        assert self._fd is not None, "not locked"
        return self._fd

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def in_use(state_dir: Path) -> str | None:
    """Who runs on ``state_dir`` (``PID 1234``), or None when no agent does (doctor asks)."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # never locked (or unreadable: the state directory check says so)
    try:
        try:
            # Held for an instant, shared: only an agent's exclusive lock refuses it.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _who(fd)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

"""sd_notify(3) without libsystemd: tell the service manager how the agent is doing.

Under systemd with ``Type=notify`` the manager sets ``NOTIFY_SOCKET`` (a path,
or ``@name`` for an abstract socket) and, with ``WatchdogSec=``,
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). Outside systemd none is set and every
call here does nothing, silently.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None  # e.g. vsock: addresses, which a service on this host never gets


class Notifier:
    """One connection to the service manager's notification socket (or none)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _watchdog_usec(env)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the manager's timeout), or None."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, **fields: str) -> None:
        """Send ``KEY=value`` lines, e.g. ``send(READY="1", STATUS="ok")``."""
        self._send(fields, 0)

    def _send(self, fields: dict[str, str], flags: int) -> None:
        if self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), flags, self._address)
        except OSError as exc:
            # Notifications are advice to the manager; losing one must not stop the agent.
            if not self._warned:
                log.warning("cannot notify the service manager: %s", exc)
                self._warned = True

    def ready(self, status: str) -> None:
        """State restored and listener bound."""
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        """A one-line status for ``systemctl status``; dropped if the manager is behind."""
        # Sent from the event loop after lock answers: a manager whose queue is
        # full must not stall them (MSG_DONTWAIT), and the next status replaces it.
        self._send({"STATUS": status.replace("\n", " ")}, socket.MSG_DONTWAIT)

    def watchdog(self) -> None:
        """The event loop is alive; dropped, like a status, if the manager is behind."""
        self._send({"WATCHDOG": "1"}, socket.MSG_DONTWAIT)

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.send(STOPPING="1", STATUS="stopping")

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is meant for another process (our parent, say)
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None

"""Talking to one phone through the configured adb server, with adbutils, bounded in time.

Every call here is blocking (adbutils speaks to the server over plain sockets)
and is meant for a worker thread; each is bounded by its own deadline, so a
thread never outlives its step by more than a second.

Two things of stock adbutils are not used: its connection starts an adb server
(``adb start-server``, on the default port) whenever the configured one does not
answer -- the agent never starts one, least of all a second -- and its shell
calls wait 600 s for a device that never opens the stream. ``ServerClient``
connects without spawning, and ``shell`` reads the v2 shell protocol itself
against a deadline.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from adbutils import AdbClient, AdbConnection, AdbDevice, AdbError, AdbTimeout


class PhoneError(Exception):
    """The adb server or the phone did not do what was asked; the message says what."""


class ServerDown(PhoneError):
    """The adb server itself does not answer: no phone is to blame."""


@dataclass(frozen=True, slots=True)
class ShellResult:
    """What a shell command printed (stdout and stderr together) and its exit status."""

    returncode: int
    output: str


class _Connection(AdbConnection):
    """A connection that fails when the server is not there, instead of starting one."""

    def _safe_connect(self) -> socket.socket:
        return self._create_socket()  # type: ignore[no-any-return]


class ServerClient(AdbClient):
    """adbutils' client for one adb server that never spawns ``adb start-server``."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, socket_timeout=timeout)
        self.address = (host, port)
        self._timeout = timeout
        self._version: int | None = None

    def server_version(self) -> int:
        """The server's protocol version, asked once (adbutils asks before every device call)."""
        if self._version is None:
            self._version = int(super().server_version())
        return self._version

    def make_connection(self, timeout: float | None = None) -> AdbConnection:
        """A connection to the server with ``timeout`` on every read."""
        try:
            conn = _Connection(*self.address)
        except AdbError as exc:
            host, port = self.address
            raise ServerDown(
                f"the adb server at {host}:{port} does not answer ({exc}); "
                "the agent never starts one: start resource-agent-adb"
            ) from exc
        conn.conn.settimeout(timeout or self._timeout)
        return conn


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PhoneError(f"{what}: no answer in time")
    return left


def shell(client: ServerClient, serial: str, command: str, timeout: float) -> ShellResult:
    """Run ``command`` on the phone (shell protocol v2, with its exit status)."""
    deadline = time.monotonic() + timeout
    what = f"{serial}: {command!r}"
    try:
        conn = AdbDevice(client, serial).open_transport(timeout=timeout)
        try:
            conn.send_command(f"shell,v2:{command}")
            conn.check_okay()
            output = bytearray()
            while True:
                conn.conn.settimeout(_remaining(deadline, what))
                header = conn.read_exact(5)
                length = int.from_bytes(header[1:5], "little")
                data = conn.read_exact(length) if length else b""
                if header[0] in (1, 2):  # stdout, stderr
                    output += data
                elif header[0] == 3:  # exit status
                    return ShellResult(data[0] if data else 255, output.decode(errors="replace"))
        finally:
            conn.close()
    except (AdbTimeout, TimeoutError) as exc:
        raise PhoneError(f"{what}: no answer in {timeout:g} s") from exc
    except (AdbError, OSError) as exc:
        raise PhoneError(f"{what}: {exc}") from exc


def reboot(client: ServerClient, serial: str, timeout: float) -> None:
    """Ask the phone to reboot (adb's ``reboot:`` service); returns once it has been told."""
    try:
        conn = AdbDevice(client, serial).open_transport(timeout=timeout)
        try:
            conn.send_command("reboot:")
            conn.check_okay()
            conn.read_until_close()
        finally:
            conn.close()
    except (AdbTimeout, TimeoutError):
        return  # a phone going down may never close the stream: it was told
    except (AdbError, OSError) as exc:
        raise PhoneError(f"{serial}: reboot: {exc}") from exc


def wait_state(client: ServerClient, serial: str, state: str, timeout: float) -> None:
    """Wait until adb lists the phone in ``state`` (``device``) or not at all (``disconnect``)."""
    try:
        client.wait_for(serial, state=state, timeout=timeout)
    except (AdbTimeout, TimeoutError) as exc:
        raise PhoneError(f"{serial}: not {state} within {timeout:g} s") from exc
    except (AdbError, OSError) as exc:
        raise PhoneError(f"{serial}: waiting for {state}: {exc}") from exc

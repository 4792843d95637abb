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

import functools
import socket
import time
from dataclasses import dataclass
from typing import Any


class PhoneError(Exception):
    """The adb server or the phone did not do what was asked; the message says what."""


class ServerDown(PhoneError):
    """The adb server itself does not answer: no phone is to blame."""


@dataclass(frozen=True, slots=True)
class ShellResult:
    """What a shell command printed (stdout and stderr together) and its exit status."""

    returncode: int
    output: str


@functools.cache
def _adbutils() -> Any:
    """adbutils, imported on first use: it (with requests and Pillow) costs 170 ms of start-up."""
    import adbutils

    return adbutils


@functools.cache
def _client_class() -> type[Any]:
    """adbutils' client, made to never spawn ``adb start-server`` (built on first use)."""
    adb = _adbutils()

    class _Connection(adb.AdbConnection):  # type: ignore[misc,name-defined,unused-ignore]
        """A connection that fails when the server is not there, instead of starting one."""

        def _safe_connect(self) -> socket.socket:
            return self._create_socket()  # type: ignore[no-any-return]

    class ServerClient(adb.AdbClient):  # type: ignore[misc,name-defined,unused-ignore]
        """adbutils' client for one adb server."""

        def __init__(self, host: str, port: int, timeout: float) -> None:
            super().__init__(host, port, socket_timeout=timeout)
            self.address = (host, port)
            self._timeout = timeout
            self._version: int | None = None

        def server_version(self) -> int:
            """The server's protocol version, asked once (adbutils asks before every call)."""
            if self._version is None:
                self._version = int(super().server_version())
            return self._version

        def make_connection(self, timeout: float | None = None) -> Any:
            """A connection to the server with ``timeout`` on every read."""
            try:
                conn = _Connection(*self.address)
            except adb.AdbError as exc:
                host, port = self.address
                raise ServerDown(
                    f"the adb server at {host}:{port} does not answer ({exc}); "
                    "the agent never starts one: start resource-agent-adb"
                ) from exc
            conn.conn.settimeout(timeout or self._timeout)
            return conn

    return ServerClient


class AdbLink:
    """One adb server, at ``host:port``; every read bounded by ``timeout``."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        """adbutils' client of this server (made on first use)."""
        if self._client is None:
            self._client = _client_class()(*self.address, self.timeout)
        return self._client


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PhoneError(f"{what}: no answer in time")
    return left


def shell(link: AdbLink, serial: str, command: str, timeout: float) -> ShellResult:
    """Run ``command`` on the phone (shell protocol v2, with its exit status)."""
    adb = _adbutils()
    deadline = time.monotonic() + timeout
    what = f"{serial}: {command!r}"
    try:
        conn = adb.AdbDevice(link.client, serial).open_transport(timeout=timeout)
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
    except (adb.AdbTimeout, TimeoutError) as exc:
        raise PhoneError(f"{what}: no answer in {timeout:g} s") from exc
    except (adb.AdbError, OSError) as exc:
        raise PhoneError(f"{what}: {exc}") from exc


def reboot(link: AdbLink, serial: str, timeout: float) -> None:
    """Ask the phone to reboot (adb's ``reboot:`` service); returns once it has been told."""
    adb = _adbutils()
    try:
        conn = adb.AdbDevice(link.client, serial).open_transport(timeout=timeout)
        try:
            conn.send_command("reboot:")
            conn.check_okay()
            conn.read_until_close()
        finally:
            conn.close()
    except (adb.AdbTimeout, TimeoutError):
        return  # a phone going down may never close the stream: it was told
    except (adb.AdbError, OSError) as exc:
        raise PhoneError(f"{serial}: reboot: {exc}") from exc


def wait_state(link: AdbLink, serial: str, state: str, timeout: float) -> None:
    """Wait until adb lists the phone in ``state`` (``device``) or not at all (``disconnect``)."""
    adb = _adbutils()
    try:
        link.client.wait_for(serial, state=state, timeout=timeout)
    except (adb.AdbTimeout, TimeoutError) as exc:
        raise PhoneError(f"{serial}: not {state} within {timeout:g} s") from exc
    except (adb.AdbError, OSError) as exc:
        raise PhoneError(f"{serial}: waiting for {state}: {exc}") from exc


def _host_request(link: AdbLink, request: str, timeout: float) -> str:
    """One host-protocol request to the server; its answer text (some have none)."""
    adb = _adbutils()
    try:
        conn = link.client.make_connection(timeout)
        try:
            conn.send_command(request)
            conn.check_okay()
            try:
                return str(conn.read_string_block())
            except (adb.AdbError, TimeoutError, OSError):
                return ""  # OKAY alone is the whole answer to some requests
        finally:
            conn.close()
    except PhoneError:
        raise
    except (adb.AdbTimeout, TimeoutError) as exc:
        raise PhoneError(f"{request}: no answer in {timeout:g} s") from exc
    except (adb.AdbError, OSError) as exc:
        raise PhoneError(f"{request}: {exc}") from exc


def reconnect(link: AdbLink, serial: str, timeout: float) -> str:
    """Ask the server to drop its connection to the phone and make it again."""
    return _host_request(link, f"host-serial:{serial}:reconnect", timeout)


def connect(link: AdbLink, address: str, timeout: float) -> str:
    """``adb connect ADDRESS``: a phone over TCP (the server may have dropped it)."""
    return _host_request(link, f"host:connect:{address}", timeout)


def state(link: AdbLink, serial: str, timeout: float) -> str:
    """The phone's state as the server lists it now (``device``, ``offline``...)."""
    return _host_request(link, f"host-serial:{serial}:get-state", timeout).strip()

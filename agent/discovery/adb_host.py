"""The adb server's host protocol, spoken over asyncio streams.

A client sends a request as four hex digits of length and then the text
(``000chost:version``); the server answers ``OKAY`` or ``FAIL`` followed by a
message framed the same way. ``host:track-devices`` then pushes the whole
device list, framed, every time it changes; ``host:transport:SERIAL`` turns
the connection into a pipe to one device, on which ``shell:CMD`` runs a
command and streams its output until the connection closes.

Why not adbutils here: its connection helper runs ``adb start-server`` (on the
default port) whenever the configured server does not answer -- the agent
must never start an adb server behind the administrator's back, least of all a
second one -- and its blocking reads can only be abandoned, not cancelled,
from the event loop. Speaking the protocol directly is a few lines, needs no
thread, and every call is cancellable and bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from agent.model import AdbState

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
HEX_DIGITS = b"0123456789abcdefABCDEF"
MAX_OUTPUT = 1 << 20  # a getprop or dumpsys answer is a few KiB; more is not a phone


class AdbHostError(Exception):
    """The adb server refused a request, or did not speak its protocol."""


def parse_device_list(text: str) -> list[tuple[str, str]]:
    """``host:track-devices`` text (``SERIAL<TAB>STATE`` lines) as (serial, state) pairs.

    A state that carries an explanation (``no permissions (...); see [...]``)
    is cut to its name. Malformed lines are logged and skipped.
    """
    devices: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        serial, tab, state = line.partition("\t")
        serial, state = serial.strip(), state.strip()
        if not tab or not serial or not state:
            log.warning("adb server listed a malformed device line: %r", line[:200])
            continue
        if state.startswith(AdbState.NO_PERMISSIONS):
            state = AdbState.NO_PERMISSIONS
        devices.append((serial, state))
    return devices


class AdbHost:
    """One adb server, at ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    async def track_devices(self, timeout: float) -> AsyncGenerator[list[tuple[str, str]], None]:
        """Every device list the server pushes, the current one first.

        The server answers and sends the current list at once, so that is
        bounded by ``timeout``: a wedged server is retried, not waited on
        forever. Later lists come whenever something changes, unbounded.
        Ends by raising: OSError when the connection fails, drops or times out,
        AdbHostError when the server refuses or garbles the stream.
        """
        reader, writer = await self._connect()
        try:
            async with asyncio.timeout(timeout):
                await _request(reader, writer, "host:track-devices")
                frame = await _read_frame(reader, "the device list")
            yield parse_device_list(frame.decode("utf-8", errors="replace"))
            while True:
                frame = await _read_frame(reader, "the device list")
                yield parse_device_list(frame.decode("utf-8", errors="replace"))
        finally:
            writer.close()

    async def devices(self, timeout: float) -> list[tuple[str, str]]:
        """The device list now (``host:devices``), once."""
        frame = await self._query("host:devices", "the device list", timeout)
        return parse_device_list(frame.decode("utf-8", errors="replace"))

    async def version(self, timeout: float) -> int:
        """The server's protocol version (``host:version``; 41 is adb 1.0.41)."""
        frame = await self._query("host:version", "the version", timeout)
        try:
            return int(frame, 16)
        except ValueError as exc:
            raise AdbHostError(f"the adb server answered the version {frame[:40]!r}") from exc

    async def shell(self, serial: str, command: str, timeout: float) -> str:
        """Run ``command`` on the device; its output (UTF-8, errors replaced)."""
        async with asyncio.timeout(timeout):
            reader, writer = await self._connect()
            try:
                await _request(reader, writer, "host:transport:" + serial)
                await _request(reader, writer, "shell:" + command)
                output = bytearray()
                while chunk := await reader.read(65536):
                    output += chunk
                    if len(output) > MAX_OUTPUT:
                        raise AdbHostError(f"{command!r} printed more than {MAX_OUTPUT} bytes")
                return output.decode("utf-8", errors="replace")
            finally:
                writer.close()

    async def _query(self, request: str, what: str, timeout: float) -> bytes:
        """One request on a connection of its own; the framed answer."""
        async with asyncio.timeout(timeout):
            reader, writer = await self._connect()
            try:
                await _request(reader, writer, request)
                return await _read_frame(reader, what)
            finally:
                writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await asyncio.open_connection(self.host, self.port)


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: str) -> None:
    data = text.encode()
    writer.write(b"%04x" % len(data) + data)
    await writer.drain()
    status = await reader.readexactly(4)
    if status == b"OKAY":
        return
    if status == b"FAIL":
        message = await _read_frame(reader, "the error message")
        raise AdbHostError(message.decode("utf-8", errors="replace") or f"{text} failed")
    raise AdbHostError(f"the adb server answered {status!r} to {text!r}, not OKAY or FAIL")


async def _read_frame(reader: asyncio.StreamReader, what: str) -> bytes:
    head = await reader.readexactly(4)
    if not all(c in HEX_DIGITS for c in head):
        raise AdbHostError(f"bad length {head!r} before {what}")
    return await reader.readexactly(int(head, 16))

"""An adb server as an old adb (Debian 12's 29) shows itself to device trackers.

adb 29 lists a dead TCP phone ``offline`` in ``host:devices`` but never pushes
that change to a ``host:track-devices`` stream; the agent works around it for
servers it does not run itself (a failed read, or its periodic recheck, asks
for the list). The tests run one adb, the wheel's 36, which pushes the change;
this proxy in front of it withholds exactly those pushes, so the workaround
stays tested against the real server's answers.

``async with offline_unannounced(server.port) as address:`` gives a
``127.0.0.1:PORT`` to use as ``[adb] server``; every other request passes
through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

TRACK = b"host:track-devices"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def _states(frame: bytes) -> dict[str, str]:
    lines = (line.partition("\t") for line in frame.decode().splitlines())
    return {serial: state for serial, tab, state in lines if tab}


async def _track(upstream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Pass the lists on, but a phone that went offline keeps its old state."""
    writer.write(await upstream.readexactly(4))  # OKAY
    told: dict[str, str] | None = None
    while True:
        listed = _states(await upstream.readexactly(int(await upstream.readexactly(4), 16)))
        before = told or {}
        shown = {
            serial: before[serial] if state == "offline" and serial in before else state
            for serial, state in listed.items()
        }
        if shown != told:
            body = "".join(f"{serial}\t{state}\n" for serial, state in shown.items()).encode()
            writer.write(b"%04x" % len(body) + body)
            await writer.drain()
            told = shown


@contextlib.asynccontextmanager
async def offline_unannounced(upstream_port: int) -> AsyncIterator[str]:
    """A proxy of the adb server on ``upstream_port`` that never pushes a phone going offline."""
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pair = {writer}
        writers.update(pair)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
            pair.add(up_writer)
            writers.add(up_writer)
            head = await reader.readexactly(4)
            request = await reader.readexactly(int(head, 16))
            up_writer.write(head + request)
            if request == TRACK:
                await _track(up_reader, writer)
            else:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, EOFError, ValueError):
            pass  # either side went away: so does the other
        finally:
            for w in pair:
                w.close()
            writers.difference_update(pair)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()

"""The adb source in-process: the real adb server, fake phones that misbehave.

The source reports through the real inventory into a real registry, so these
tests look at what the agent would show, without an HTTP round trip, and can
use short read timeouts. Phones that answer garbage, hang, or die in the
middle of a read must leave the source running and the phone reported with
what is known.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.config import AdbSection
from agent.discovery.adb import AdbSource
from agent.discovery.adb_host import AdbHost, AdbHostError
from agent.discovery.inventory import Inventory
from agent.model import Description, Resource
from agent.registry import Registry
from tests.fakes.adb29 import offline_unannounced
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)


class RegistrySink:
    """The inventory's facts applied to a real registry (the authority minus the store)."""

    def __init__(self) -> None:
        self.registry = Registry(time.time, grace=30.0)

    def describe(self, desc: Description) -> None:
        self.registry.describe(desc)

    def vanish(self, resource_id: str) -> None:
        self.registry.vanish(resource_id)

    def set_health(self, resource_id: str, reason: str | None) -> None:
        self.registry.set_health(resource_id, reason)

    def get(self, resource_id: str) -> Resource | None:
        found = {r.id: r for r in self.registry.resources()}
        return found.get(resource_id)


def source(
    sink: RegistrySink,
    server: str,
    *,
    read_timeout: float = 0.5,
    startup_timeout: float = 10.0,
    tcp_recheck: float = 30.0,
    battery_interval: float = 0.2,
) -> AdbSource:
    """An adb source reporting into ``sink`` (TCP phones allowed)."""
    settings = AdbSection(server=server, allow_remote=True, battery_interval=battery_interval)
    inventory = Inventory(sink, adb_enabled=True)
    return AdbSource(inventory, settings, read_timeout, startup_timeout, tcp_recheck)


def where(sink: RegistrySink, rid: str, check: Callable[[Resource], bool]) -> Callable[[], Any]:
    """A poll for ``until``: the resource once it exists and passes ``check``."""

    def poll() -> Resource | None:
        res = sink.get(rid)
        return res if res is not None and check(res) else None

    return poll


@pytest.mark.parametrize("mode", ["garbage", "hang"])
async def test_unreadable_phone_is_reported_and_read_again_later(
    mode: Any,
    adb_server: AdbServer,
    phones: Callable[..., FakeAdbd],
    caplog: pytest.LogCaptureFixture,
) -> None:
    phone = phones(shell_mode=mode)
    adb_server.connect(phone.serial)
    sink = RegistrySink()

    with caplog.at_level(logging.WARNING, logger="agent.discovery.adb"):
        adb = source(sink, adb_server.address, read_timeout=0.3)
        await adb.start()
        try:
            res = sink.get(phone.serial)
            assert res is not None
            assert res.present and res.health is None
            assert dict(res.metadata) == {"adb-state": "device"}
            # The phone gets well: the next round reads what it could not.
            phone.shell_mode = "normal"
            res = await until(
                where(sink, phone.serial, lambda r: "sdk" in r.metadata), what="props read"
            )
            assert res.metadata["sdk"] == "34" and res.metadata["battery"] == "85"
        finally:
            await adb.stop()
    messages = [r.getMessage() for r in caplog.records]
    why = "timed out" if mode == "hang" else "getprop printed no properties"
    assert f"adb: cannot read the properties of {phone.serial}: {why}" in messages
    assert any(m.startswith(f"adb: cannot read the battery of {phone.serial}") for m in messages)


async def test_slow_phone_does_not_hold_up_start(
    adb_server: AdbServer, phones: Callable[..., FakeAdbd], caplog: pytest.LogCaptureFixture
) -> None:
    phone = phones(shell_mode="hang")
    adb_server.connect(phone.serial)
    sink = RegistrySink()

    # Both reads must time out (2 s) before the phone is reported; start waits 0.2 s.
    adb = source(sink, adb_server.address, read_timeout=1.0, startup_timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="agent.discovery.adb"):
        await adb.start()
    try:
        assert "took longer than 0.2 s to read" in caplog.text
        res = await until(where(sink, phone.serial, lambda r: r.present), what="the phone")
        assert res.metadata["adb-state"] == "device"
    finally:
        await adb.stop()


async def test_dead_tcp_phone_is_noticed_without_a_failed_read(
    adb_server: AdbServer, phones: Callable[..., FakeAdbd]
) -> None:
    # An old adb (29) lists a dead TCP phone offline without pushing the change;
    # with no battery read due for minutes, the periodic recheck must notice it.
    phone = phones()
    adb_server.connect(phone.serial)
    sink = RegistrySink()

    async with offline_unannounced(adb_server.port) as old_adb:
        adb = source(sink, old_adb, tcp_recheck=0.2, battery_interval=300.0)
        await adb.start()
        try:
            reads = phone.shell_count
            await asyncio.to_thread(phone.stop)
            res = await until(
                where(sink, phone.serial, lambda r: r.metadata["adb-state"] == "offline"),
                what="the dead phone to show offline",
            )
            assert res.health is not None and res.metadata["model"] == "Pixel 7"
            assert phone.shell_count == reads  # noticed by the list, not by a read
        finally:
            await adb.stop()


async def test_phone_dying_mid_read_leaves_the_source_running(
    adb_server: AdbServer, phones: Callable[..., FakeAdbd], caplog: pytest.LogCaptureFixture
) -> None:
    dying = phones(shell_mode="hang")
    adb_server.connect(dying.serial)
    sink = RegistrySink()

    # An old adb (29) does not push the death: the broken read must reveal it.
    async with offline_unannounced(adb_server.port) as old_adb:
        with caplog.at_level(logging.WARNING, logger="agent.discovery.adb"):
            adb = source(sink, old_adb, read_timeout=30.0)
            starting = asyncio.create_task(adb.start())
            try:
                await until(lambda: dying.shell_count >= 1, what="the first read to begin")
                await asyncio.to_thread(dying.stop)
                await starting  # the broken read ends start-up's wait, not the timeout
                res = await until(
                    where(sink, dying.serial, lambda r: r.metadata["adb-state"] == "offline"),
                    what="the dead phone to show offline",
                )
                assert res.health is not None

                healthy = phones()
                await asyncio.to_thread(adb_server.connect, healthy.serial)
                res = await until(
                    where(sink, healthy.serial, lambda r: "model" in r.metadata),
                    what="a new phone to be read",
                )
                assert res.metadata["battery"] == "85" and res.health is None
            finally:
                starting.cancel()
                await adb.stop()
    assert f"adb: cannot read the properties of {dying.serial}" in caplog.text


async def test_host_protocol_errors_name_the_problem(adb_server: AdbServer) -> None:
    host = AdbHost("127.0.0.1", adb_server.port)
    with pytest.raises(AdbHostError, match="not found"):
        await host.shell("nosuchphone", "getprop", timeout=5)
    assert await host.devices(timeout=5) is not None

    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HELO")
        await writer.drain()
        writer.close()

    async def bad_frame(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"OKAYzz12")
        await writer.drain()
        writer.close()

    for handler, message in ((babble, "not OKAY or FAIL"), (bad_frame, "bad length")):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises(AdbHostError, match=message):
                await AdbHost("127.0.0.1", port).devices(timeout=5)


async def test_garbled_server_is_retried_without_stopping(caplog: pytest.LogCaptureFixture) -> None:
    connections = 0

    with caplog.at_level(logging.WARNING, logger="agent.discovery.adb"):

        async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.read(100)
            writer.write(b"OKAY0004x\ty\nzzzz")  # one list, then nonsense
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(garble, "127.0.0.1", 0)
        port: int = server.sockets[0].getsockname()[1]
        sink = RegistrySink()
        async with server:
            adb = source(sink, f"127.0.0.1:{port}")
            await adb.start()
            try:
                await until(lambda: connections >= 3, what="the source to reconnect twice")
            finally:
                await adb.stop()
    assert f"lost the server at 127.0.0.1:{port} (bad length b'zzzz' before the device list)" in (
        caplog.text
    )


async def test_silent_server_is_retried_not_waited_on(caplog: pytest.LogCaptureFixture) -> None:
    """A server that takes the connection but never answers (wedged) is retried."""
    connections = 0

    with caplog.at_level(logging.WARNING, logger="agent.discovery.adb"):

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.read()  # never answers; returns when the source hangs up
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port: int = server.sockets[0].getsockname()[1]
        sink = RegistrySink()
        async with server:
            adb = source(sink, f"127.0.0.1:{port}", read_timeout=0.2)
            await adb.start()
            try:
                await until(lambda: connections >= 2, what="the source to try again")
            finally:
                await adb.stop()
    assert f"no server at 127.0.0.1:{port} (timed out)" in caplog.text

"""Fixtures for tests that drive the real adb server with fake phones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
    """The module's private adb server (own port and HOME; never the default 5037)."""
    with AdbServer(tmp_path_factory.mktemp("adb-home")) as server:
        yield server


@pytest.fixture
def phones(adb_server: AdbServer) -> Iterator[Callable[..., FakeAdbd]]:
    """Start fake phones (FakeAdbd keyword arguments); stopped and disconnected after."""
    made: list[FakeAdbd] = []

    def make(**kwargs: Any) -> FakeAdbd:
        phone = FakeAdbd(**kwargs).start()
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.stop()
        if adb_server.answers():
            adb_server.disconnect(phone.serial)

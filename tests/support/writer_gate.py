"""Holding the store's writer still from a test: it runs in a process of its own,
so what it waits on is a file, and what it runs is a module's function."""

from __future__ import annotations

import asyncio
import functools
import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent.store import Store

WAIT = 30.0  # seconds the writer is held at most
_numbers = itertools.count()


def nothing(conn: sqlite3.Connection) -> None:
    """A call that only waits its turn: what was queued before it is done."""


def wait_for_file(conn: sqlite3.Connection, busy: Path, proceed: Path) -> bool:
    """Say so (``busy``), then wait until ``proceed`` exists; answers whether it did."""
    busy.touch()
    deadline = time.monotonic() + WAIT
    while not proceed.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class Gate:
    """``held = gate.hold(store)``, ``await gate.closed()``, then ``gate.open()``: the
    writer stays inside one commit meanwhile (writes queued then form one group)."""

    def __init__(self, directory: Path) -> None:
        n = next(_numbers)
        self.busy = directory / f"gate-{n}-busy"
        self.proceed = directory / f"gate-{n}-proceed"

    def hold(self, store: Store) -> asyncio.Future[Any]:
        """The writer's call that waits; True once opened in time."""
        return store.call(functools.partial(wait_for_file, busy=self.busy, proceed=self.proceed))

    async def closed(self) -> None:
        """Wait until the writer is inside the call."""
        deadline = time.monotonic() + WAIT
        while not self.busy.exists():
            assert time.monotonic() < deadline, "the writer never reached the gate"
            await asyncio.sleep(0.002)

    def open(self) -> None:
        """Let the writer go on."""
        self.proceed.touch()

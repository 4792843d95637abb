"""A commit the disk refuses: the command is refused (NOT_SAVED), and nothing of it stays.

The real core (build_core) on a temp database. A write fails here because it
carries a value SQLite cannot take (a name with a lone surrogate, which an
undecodable byte from a device becomes); the writer is held back
first, so the command under test is queued behind that write, in its
generation, and is never tried. tests/integration/test_fault_disk.py does the
same with a full and a read-only disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from agent.authority import RETRY
from agent.core import STATE_FILE, Core
from agent.model import (
    Code,
    Description,
    Event,
    EventType,
    FaultKind,
    HoldKind,
    Kind,
    Refused,
    Resource,
)
from agent.registry import Registry
from tests.support.clock import FakeClock
from tests.support.core import core_harness
from tests.support.holders import PERSON, QUEUED
from tests.support.writer_gate import Gate, nothing

T = TypeVar("T")
BAD = Description("zz", "bad \udcff name", Kind.USB)


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    async with core_harness(tmp_path, FakeClock()) as built:
        for rid in ("r1", "r2"):
            built.authority.describe(Description(rid, rid.upper(), Kind.STATIC))
        await built.store.call(nothing)  # both on disk
        yield built


async def behind_a_failed_write(core: Core, command: Awaitable[T], tmp_path: Path) -> T:
    """Run ``command`` queued behind a write that fails; its outcome."""
    gate = Gate(tmp_path)
    blocked = gate.hold(core.store)
    await gate.closed()
    core.authority.describe(BAD)  # its commit will fail
    task = asyncio.ensure_future(command)
    for _ in range(10):
        await asyncio.sleep(0)  # the command runs its rule and queues its write
    assert not task.done()
    gate.open()
    assert await blocked
    return await task


def on_disk(path: Path, rid: str) -> tuple[str | None, int]:
    conn = sqlite3.connect(path / STATE_FILE)
    try:
        row = conn.execute("SELECT hold_key, enabled FROM resources WHERE id=?", (rid,))
        key, enabled = row.fetchone()
        return key, enabled
    finally:
        conn.close()


async def test_a_change_the_disk_refuses_is_refused_and_undone(core: Core, tmp_path: Path) -> None:
    published: list[Event] = []
    core.bus.subscribe(published.append)
    with pytest.raises(Refused) as info:
        await behind_a_failed_write(core, core.authority.reserve("r1", 60, QUEUED), tmp_path)
    assert info.value.code is Code.NOT_SAVED
    assert f"cannot save to the state directory {tmp_path}" in info.value.message
    assert "nothing was changed" in info.value.message
    assert core.registry.get("r1").hold is None  # rolled back
    assert on_disk(tmp_path, "r1") == (None, 1)
    assert published == []  # no sink heard of it
    assert core.authority.disk_problem is None  # a bad value is no trouble with the disk
    # The next command is tried afresh.
    hold = await core.authority.reserve("r1", 60, QUEUED)
    assert on_disk(tmp_path, "r1") == (hold.key, 1)
    assert [e.type for e in published] == [EventType.RESERVED]


async def test_a_release_the_disk_refuses_leaves_the_lock_in_place(
    core: Core, tmp_path: Path
) -> None:
    hold = await core.authority.lock("r1", None, PERSON)
    with pytest.raises(Refused) as info:
        await behind_a_failed_write(core, core.authority.release("r1", hold.key), tmp_path)
    assert info.value.code is Code.NOT_SAVED
    res = core.registry.get("r1")
    assert res.hold is not None and (res.hold.kind, res.hold.key) == (HoldKind.LOCKED, hold.key)
    assert on_disk(tmp_path, "r1") == (hold.key, 1)
    # The key still works, and the release goes through now.
    await core.authority.release("r1", hold.key)
    assert on_disk(tmp_path, "r1") == (None, 1)


async def test_an_answer_that_tells_of_a_refused_change_is_refused_too(
    core: Core, tmp_path: Path
) -> None:
    """Disabled twice: the second changes nothing, but its answer would tell of the first."""

    async def twice() -> tuple[object, ...]:
        first = asyncio.ensure_future(core.authority.disable("r1", "broken"))
        second = asyncio.ensure_future(core.authority.disable("r1", "broken"))
        return await asyncio.gather(first, second, return_exceptions=True)

    outcomes = await behind_a_failed_write(core, twice(), tmp_path)
    assert all(isinstance(o, Refused) and o.code is Code.NOT_SAVED for o in outcomes), outcomes
    assert core.registry.get("r1").enabled


async def test_the_agents_own_changes_are_tried_until_saved(core: Core, tmp_path: Path) -> None:
    started = asyncio.get_running_loop().time()
    await behind_a_failed_write(core, core.authority.quarantine("r2", "three strikes"), tmp_path)
    assert asyncio.get_running_loop().time() - started >= RETRY * 0.9  # a second try
    fault = core.registry.get("r2").fault
    assert fault is not None and fault.kind is FaultKind.QUARANTINED
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    try:
        (kind,) = conn.execute("SELECT fault_kind FROM resources WHERE id='r2'").fetchone()
    finally:
        conn.close()
    assert kind == FaultKind.QUARANTINED.value


def test_roll_back_restores_decisions_and_keeps_what_sources_said() -> None:
    clock = FakeClock()
    reg = Registry(clock)
    for rid in ("held", "off", "gone", "away"):
        reg.describe(Description(rid, rid, Kind.STATIC))
    reg.vanish("gone")
    saved = {res.id: res for res in reg.resources()}
    reg.reserve("held", 60, QUEUED)
    reg.disable("off", "for a while")
    reg.forget("gone")
    reg.vanish("away")  # a fact
    reg.describe(Description("new", "new", Kind.USB))  # a fact, of a resource not saved
    reg.lock("new", None, PERSON)

    changed = reg.roll_back(saved)

    assert sorted(changed) == ["gone", "held", "new", "off"]
    assert reg.get("held").hold is None
    assert reg.get("off").enabled and reg.get("off").disabled_reason == ""
    assert reg.get("gone") == saved["gone"]
    assert not reg.get("away").present  # the source's word stays
    new = reg.get("new")
    assert new.hold is None and new.present and new == Resource("new", "new", Kind.USB)
    # The deadlines follow: the undone reservation sets none.
    absent_since = saved["gone"].absent_since
    assert absent_since is not None and reg.next_deadline() == absent_since + 30.0

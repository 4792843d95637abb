"""The SQLite store, for real in a temp dir: durability, history, group commit.

A store call runs in the writer's process, so the calls here are this module's
functions (bound with functools.partial): the writer imports them by name."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.model import (
    Description,
    EndReason,
    Event,
    EventType,
    HistoryEntry,
    Hold,
    HoldKind,
    Kind,
    Resource,
)
from agent.registry import Registry
from agent.store import Store
from agent.store_errors import CommitFailed, StoreError
from agent.store_writer import CHECKPOINT_EVERY
from tests.support.clock import FakeClock
from tests.support.holders import BUILD, PERSON, QUEUED, numbered_keys
from tests.support.writer_gate import Gate, nothing


def registry(clock: FakeClock, *ids: str) -> tuple[Registry, list[Event]]:
    reg = Registry(clock, key_source=numbered_keys())
    events: list[Event] = []
    for rid in ids:
        events += reg.describe(
            Description(rid, f"Phone {rid}", Kind.ANDROID, "a phone", {"model": "pixel"})
        )
    return reg, events


async def reopen(path: Path, clock: FakeClock) -> list[Resource]:
    """What a restarted agent loads."""
    store = Store(path, clock)
    try:
        return store.load()
    finally:
        await store.close()


async def started(path: Path, clock: FakeClock, groups: list[float] | None = None) -> Store:
    """A started store; ``groups`` hears each group's commit time."""
    store = Store(path, clock, None if groups is None else groups.append)
    await store.start()
    return store


# ---------------------------------------------------- calls, run in the writer


def disabled_reasons(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT disabled_reason FROM resources ORDER BY id")]


def write_then_fail(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE scratch (x)")
    raise ValueError("bad call")


def chatty(conn: sqlite3.Connection) -> str:
    """Print to stdout and stderr, as a library might, from inside the writer."""
    print("a stray line on stdout")
    print("a stray line on stderr", file=sys.stderr)
    return "answered"


def _only_in(pid: int) -> object:
    if os.getpid() != pid:
        raise RuntimeError("this value cannot be read outside the process that made it")
    return object()


class Fragile:
    """Pickles in the writer, and cannot be unpickled in the agent."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_only_in, (os.getpid(),))


def fragile(conn: sqlite3.Connection) -> Fragile:
    return Fragile()


def the_connection(conn: sqlite3.Connection) -> sqlite3.Connection:
    return conn  # nothing pickle can carry back


def tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]


async def test_new_database_in_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    assert await reopen(path, FakeClock()) == []
    assert path.exists()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_unusable_path_is_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot open the state database .*file/state\.db"):
        Store(tmp_path / "file" / "state.db", FakeClock())
    with pytest.raises(StoreError, match="cannot open the state database"):
        Store(tmp_path, FakeClock())  # a directory
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        Store(tmp_path / "junk.db", FakeClock())


async def test_unreadable_row_is_store_error(tmp_path: Path) -> None:
    """A row this agent cannot read (a newer agent's kind) is named, not a traceback."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    _, events = registry(clock, "p1")

    store = await started(path, clock)
    await store.write(events)
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE resources SET kind='fridge'")
    conn.close()
    store = Store(path, clock)
    with pytest.raises(StoreError, match=r"cannot read the state database .*state\.db: 'fridge'"):
        store.load()
    await store.close()


async def test_hold_survives_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1", "p2")

    store = await started(path, clock)
    await store.write(events)
    hold, evs = reg.reserve("p1", 60, QUEUED)
    await store.write(evs)
    await store.write(reg.disable("p2", "cracked screen"))
    await store.close()
    loaded = await reopen(path, clock)
    assert [r.id for r in loaded] == ["p1", "p2"]
    p1, p2 = loaded
    assert p1.hold == hold
    assert p1.hold == Hold(HoldKind.RESERVED, "key-0", QUEUED, clock.now, clock.now + 60, 60)
    assert (p1.name, p1.kind, p1.description) == ("Phone p1", Kind.ANDROID, "a phone")
    assert dict(p1.metadata) == {"model": "pixel"}
    assert p1.enabled
    assert not p2.enabled
    assert p2.disabled_reason == "cracked screen"
    assert p2.hold is None
    # What the registry restores from it still answers to the key.
    restored = Registry(clock)
    restored.restore(loaded)
    locked, _ = restored.lock("p1", "key-0", BUILD)
    assert locked.holder == BUILD


async def test_lock_and_release_persist(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")

    store = await started(path, clock)
    await store.write(events)
    reserved, evs = reg.reserve("p1", 60, QUEUED)
    await store.write(evs)
    locked, evs = reg.lock("p1", reserved.key, BUILD, 300)
    await store.write(evs)
    await store.close()
    (p1,) = await reopen(path, clock)
    assert p1.hold == locked
    assert p1.hold is not None
    assert (p1.hold.kind, p1.hold.expires, p1.hold.duration) == (
        HoldKind.LOCKED,
        clock.now + 300,
        300,
    )

    store = await started(path, clock)
    _, evs = reg.release("p1", locked.key)
    await store.write(evs)
    await store.close()
    (p1,) = await reopen(path, clock)
    assert p1.hold is None


async def test_gone_and_absent_since_persist(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")

    store = await started(path, clock)
    await store.write(events)
    await store.write(reg.vanish("p1"))
    clock.advance(60)
    await store.write(reg.tick())
    await store.close()
    (p1,) = await reopen(path, clock)
    assert p1.gone
    assert p1.absent_since == clock.now - 60


async def test_history_of_holds(tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock.now
    reg, events = registry(clock, "p1", "p2")

    store = await started(tmp_path / "state.db", clock)
    await store.write(events)
    # 1: reserved, locked by the build, released.
    reserved, evs = reg.reserve("p1", 60, QUEUED)
    await store.write(evs)
    clock.advance(2)
    locked, evs = reg.lock("p1", reserved.key, BUILD)
    await store.write(evs)
    clock.advance(10)
    _, evs = reg.release("p1", locked.key)
    await store.write(evs)
    # 2: a reservation that expires (written late: it ended at its deadline).
    reserved, evs = reg.reserve("p1", 30, QUEUED)
    await store.write(evs)
    clock.advance(45)
    await store.write(reg.tick())
    # 3: a direct lock, released by force.
    _, evs = reg.lock("p1", None, PERSON)
    await store.write(evs)
    _, evs = reg.release("p1", None, True)
    await store.write(evs)
    # 4: a lock still held.
    _, evs = reg.lock("p1", None, PERSON, 20)
    await store.write(evs)
    full = await store.history("p1")
    short = await store.history("p1", limit=2)
    other = await store.history("p2")
    await store.close()
    assert other == []
    assert full == [
        HistoryEntry(HoldKind.LOCKED, PERSON, None, start + 57, None, None),
        HistoryEntry(HoldKind.LOCKED, PERSON, None, start + 57, start + 57, EndReason.FORCED),
        HistoryEntry(
            HoldKind.RESERVED, QUEUED, start + 12, None, start + 42, EndReason.RESERVATION_EXPIRED
        ),
        HistoryEntry(HoldKind.LOCKED, BUILD, start, start + 2, start + 12, EndReason.RELEASED),
    ]
    assert short == full[:2]


async def test_history_limit_with_many_holds(tmp_path: Path) -> None:
    clock = FakeClock()
    reg, events = registry(clock, "p1")

    store = await started(tmp_path / "state.db", clock)
    await store.write(events)
    for i in range(30):
        clock.advance(1)
        if i % 3 == 0:  # three lines: reserved, locked, released
            hold, evs = reg.reserve("p1", 60, QUEUED)
            store.write(evs)
            hold, evs = reg.lock("p1", hold.key, BUILD)
        else:  # two lines: locked, released
            hold, evs = reg.lock("p1", None, PERSON)
        store.write(evs)
        _, evs = reg.release("p1", hold.key)
        store.write(evs)
    entries = await store.history("p1", limit=5)
    await store.close()
    assert len(entries) == 5
    assert [e.locked_at for e in entries] == [clock.now - i for i in range(5)]
    for entry in entries:
        assert entry.end_reason is EndReason.RELEASED
        assert entry.kind is HoldKind.LOCKED
    assert entries[2].reserved_at == clock.now - 2  # i == 27
    assert entries[0].reserved_at is None


async def test_group_commit_many_concurrent_writes(tmp_path: Path) -> None:
    """Writes queued while a commit is on disk go to disk together, in order."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    ids = [f"p{i}" for i in range(10)]
    reg, events = registry(clock, *ids)
    writes = 300

    groups: list[float] = []
    store = await started(path, clock, groups)
    await store.write(events)
    done: list[int] = []

    def write(i: int) -> asyncio.Future[None]:
        future = store.write(reg.disable(ids[i % len(ids)], f"write {i}"))
        future.add_done_callback(lambda _: done.append(i))
        return future

    items: list[Callable[[], asyncio.Future[Any]]] = [
        functools.partial(write, i) for i in range(writes)
    ]
    # A read sees every write queued before it, and none after.
    items.insert(151, lambda: store.call(disabled_reasons))
    committed = len(groups)
    results = await blocked_group(store, items, tmp_path)
    seen = results.pop(151)
    assert results == [None] * writes
    await store.close()
    assert done == list(range(writes))
    assert seen == [f"write {max(n for n in range(151) if n % 10 == j)}" for j in range(10)]
    # One commit for the blocked group, one for everything queued behind it.
    assert len(groups) - committed == 2
    loaded = {r.id: r for r in await reopen(path, clock)}
    for i, rid in enumerate(ids):
        last = max(n for n in range(writes) if n % len(ids) == i)
        assert loaded[rid].disabled_reason == f"write {last}"


async def blocked_group(
    store: Store, items: list[Callable[[], asyncio.Future[Any]]], tmp_path: Path
) -> list[Any]:
    """Submit ``items`` while the writer is held inside a commit, so they form
    one group; answer each one's result or exception."""
    gate = Gate(tmp_path)
    held = gate.hold(store)
    await gate.closed()
    futures = [submit() for submit in items]
    await asyncio.sleep(0.05)  # every frame is sent before the writer goes on
    gate.open()
    assert await held
    return await asyncio.gather(*futures, return_exceptions=True)


async def test_failing_call_fails_alone_and_leaves_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1", "p2")

    store = await started(path, clock)
    await store.write(events)
    results = await blocked_group(
        store,
        [
            lambda: store.write(reg.disable("p1", "first")),
            lambda: store.call(write_then_fail),
            lambda: store.write(reg.disable("p2", "last")),
        ],
        tmp_path,
    )
    names = await store.call(tables)
    await store.close()
    ok1, error, ok2 = results
    assert ok1 is None
    assert ok2 is None
    assert isinstance(error, ValueError)
    assert str(error) == "bad call"
    assert "scratch" not in names
    assert "resources" in names
    loaded = {r.id: r for r in await reopen(path, clock)}
    assert loaded["p1"].disabled_reason == "first"
    assert loaded["p2"].disabled_reason == "last"


async def test_unstorable_write_fails_with_the_writes_queued_after_it(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1", "p2")
    # A snapshot SQLite can't take: a name with a lone surrogate (what an
    # undecodable byte from a device becomes).
    bad = Event(EventType.ADDED, Resource("p3", "bad \udcff name", Kind.USB))

    store = await started(path, clock)
    await store.write(events)
    results = await blocked_group(
        store,
        [
            lambda: store.write(reg.disable("p1", "first")),
            lambda: store.write([bad]),
            lambda: store.write(reg.disable("p2", "last")),
        ],
        tmp_path,
    )
    ok1, error, after = results
    assert ok1 is None
    assert isinstance(error, CommitFailed)
    assert error.generation == 0
    assert not error.uncertain  # refused before SQLite wrote anything
    assert f"cannot save to the state directory {tmp_path}" in str(error)
    assert "surrogates not allowed" in str(error)
    # Built on a state that never reached the disk: not even tried.
    assert isinstance(after, CommitFailed)
    assert "a change queued before this one was not saved" in str(after)
    with pytest.raises(CommitFailed):
        await store.write(reg.disable("p2", "never"))  # still the failed generation
    assert store.problem is None  # a value SQLite refuses is no trouble with the disk
    # Its owner rolled its state back: the writer carries on.
    store.reset()
    await store.write(reg.enable("p1"))
    with pytest.raises(CommitFailed):
        await store.write([bad])
    store.reset()
    await store.write(reg.disable("p2", "later"))
    await store.close()
    loaded = {r.id: r for r in await reopen(path, clock)}
    assert sorted(loaded) == ["p1", "p2"]
    assert loaded["p1"].enabled
    assert loaded["p1"].disabled_reason == "first"
    assert loaded["p2"].disabled_reason == "later"


async def test_the_wal_is_checkpointed_every_so_many_groups(tmp_path: Path) -> None:
    """Not inside COMMIT (SQLite's own would fail a commit that is on disk if it failed)."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")
    store = await started(path, clock)
    schema = path.stat().st_size  # copied in when the agent's reading connection closed
    await store.write(events)
    for i in range(CHECKPOINT_EVERY - 2):
        await store.write(reg.disable("p1", f"reason {i}"))
    before = path.stat().st_size
    await store.write(reg.enable("p1"))  # the group that makes CHECKPOINT_EVERY
    # The copy follows the group's answers; the writer does what is queued after it.
    await store.call(nothing)
    checkpointed = path.stat().st_size
    await store.close()
    assert schema == before < checkpointed, (schema, before, checkpointed)


async def test_close_flushes_queued_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    ids = [f"p{i:02d}" for i in range(50)]
    reg, events = registry(clock, *ids)

    store = await started(path, clock)
    futures = [store.write(events)]
    futures += [store.write(reg.disable(rid, "queued")) for rid in ids]
    await store.close()  # nothing awaited before
    for future in futures:
        assert future.done()
        assert future.exception() is None
    loaded = await reopen(path, clock)
    assert [r.id for r in loaded] == ids
    assert all(r.disabled_reason == "queued" for r in loaded)


async def test_close_without_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", FakeClock())
    await store.close()
    assert await reopen(tmp_path / "state.db", FakeClock()) == []


async def test_write_order_within_one_event_list(tmp_path: Path) -> None:
    """The last snapshot of a resource in one write is the one stored."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")
    hold, evs = reg.reserve("p1", 60, QUEUED)
    events += evs
    _, evs = reg.release("p1", hold.key)
    events += evs
    events += reg.disable("p1", "x")

    store = await started(path, clock)
    await store.write(events)
    await store.close()
    (p1,) = await reopen(path, clock)
    assert p1.hold is None
    assert p1.disabled_reason == "x"


async def test_write_after_close_fails_instead_of_hanging(tmp_path: Path) -> None:
    clock = FakeClock()
    reg, events = registry(clock, "p1")

    store = await started(tmp_path / "state.db", clock)
    queued = store.write(events)
    await store.close()
    assert queued.done()
    assert queued.exception() is None
    with pytest.raises(StoreError, match=r"state\.db is closed"):
        await asyncio.wait_for(store.write(reg.disable("p1")), 10)
    with pytest.raises(StoreError, match="is closed"):
        await asyncio.wait_for(store.history("p1"), 10)


async def test_a_call_that_cannot_cross_to_the_writer_fails_alone(tmp_path: Path) -> None:
    """A call runs in the writer's process: one that cannot pickle is refused by name,
    and the writes around it are saved."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")
    store = await started(path, clock)
    saved = store.write(events)
    with pytest.raises(StoreError, match="a store call must pickle: Can't pickle local object"):
        await store.call(lambda conn: None)
    with pytest.raises(StoreError, match="the store cannot answer this call: cannot pickle"):
        await store.call(the_connection)
    await saved
    await still_saves(store, reg, path, clock)


async def test_what_the_writer_prints_does_not_break_its_answers(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")
    store = await started(path, clock)
    await store.write(events)
    assert await store.call(chatty) == "answered"
    await still_saves(store, reg, path, clock)


async def still_saves(store: Store, reg: Registry, path: Path, clock: FakeClock) -> None:
    """The writer goes on: a change after it is saved, and kept across a restart."""
    await store.write(reg.disable("p1", "after"))
    await store.close()
    (p1,) = await reopen(path, clock)
    assert p1.disabled_reason == "after"


async def test_an_answer_the_agent_cannot_read_ends_that_writer_and_another_starts(
    tmp_path: Path,
) -> None:
    """What the writer had not answered is then uncertain; the store goes on."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    reg, events = registry(clock, "p1")
    store = await started(path, clock)
    await store.write(events)
    with pytest.raises(CommitFailed, match="writer process exited") as failed:
        await store.call(fragile)
    assert failed.value.uncertain
    await asyncio.wait_for(still_saves(store, reg, path, clock), 30)

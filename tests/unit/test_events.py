"""The event bus, and the authority's promise: durable before answered, published
after commit, in commit order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.authority import Authority
from agent.core import STATE_FILE, Core
from agent.events import EventBus
from agent.model import (
    Code,
    Description,
    EndReason,
    Event,
    EventType,
    HoldKind,
    Kind,
    Refused,
    Resource,
)
from agent.registry import Registry
from agent.store import Store
from tests.support.clock import FakeClock
from tests.support.core import core_harness
from tests.support.holders import BUILD, QUEUED
from tests.support.writer_gate import Gate


def event(type_: EventType, rid: str = "r") -> Event:
    return Event(type_, Resource(rid, rid, Kind.STATIC))


# ------------------------------------------------------------------ the bus


def test_bus_delivers_every_event_to_every_subscriber_in_order() -> None:
    bus = EventBus()
    first: list[Event] = []
    second: list[Event] = []
    bus.subscribe(first.append)
    bus.subscribe(second.append)
    events = [event(EventType.ADDED), event(EventType.RESERVED), event(EventType.RELEASED)]
    bus.publish(events[:2])
    bus.publish(events[2:])
    assert first == events
    assert second == events


def test_bus_unsubscribe() -> None:
    bus = EventBus()
    got: list[Event] = []
    unsubscribe = bus.subscribe(got.append)
    bus.publish([event(EventType.ADDED)])
    unsubscribe()
    bus.publish([event(EventType.UPDATED)])
    assert [e.type for e in got] == [EventType.ADDED]


def test_bus_failing_subscriber_harms_no_other(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    got: list[Event] = []

    def broken(e: Event) -> None:
        raise RuntimeError("sink down")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    with caplog.at_level(logging.ERROR, logger="agent.events"):
        bus.publish([event(EventType.ADDED), event(EventType.UPDATED)])
    assert [e.type for e in got] == [EventType.ADDED, EventType.UPDATED]
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None


def test_bus_subscriber_may_unsubscribe_while_called() -> None:
    bus = EventBus()
    got: list[Event] = []
    others: list[Event] = []

    def once(e: Event) -> None:
        got.append(e)
        unsubscribe()

    unsubscribe = bus.subscribe(once)
    bus.subscribe(others.append)
    bus.publish([event(EventType.ADDED), event(EventType.UPDATED)])
    assert [e.type for e in got] == [EventType.ADDED]
    assert len(others) == 2


# ------------------------------------------------------------ the authority


class Harness:
    """The real core (``build_core``) around one temp database, and what it published."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.published: list[Event] = []
        self.changed = asyncio.Event()
        self._core: Core | None = None

    @property
    def core(self) -> Core:
        assert self._core is not None, "the core is not running"
        return self._core

    @property
    def authority(self) -> Authority:
        return self.core.authority

    @property
    def registry(self) -> Registry:
        return self.core.registry

    @property
    def store(self) -> Store:
        return self.core.store

    def attach(self, core: Core) -> None:
        """Follow ``core``'s bus from now on."""
        self._core = core
        core.bus.subscribe(self._on_event)

    def _on_event(self, e: Event) -> None:
        self.published.append(e)
        self.changed.set()

    def on_disk(self, rid: str) -> sqlite3.Row | None:
        """The committed row, read through a connection of its own."""
        conn = sqlite3.connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM resources WHERE id=?", (rid,)
            ).fetchone()
            return row
        finally:
            conn.close()

    async def published_until(self, done: Callable[[list[Event]], bool]) -> list[Event]:
        """Wait (at most 10 s) until the published events satisfy ``done``."""
        await self.heard(lambda: done(self.published))
        return self.published

    async def heard(self, done: Callable[[], bool]) -> None:
        """Wait (at most 10 s) for ``done``, checked after each event."""
        async with asyncio.timeout(10):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def harness(
    state_dir: Path, clock: Callable[[], float], grace: float = 30.0
) -> AsyncIterator[Harness]:
    """The core on ``state_dir`` as the daemon builds it: started here, stopped after the block.

    Stopping stops the authority's timer and closes the store, which finishes
    every queued write: what the block's commands published is complete after it.
    """
    h = Harness(state_dir / STATE_FILE)
    async with core_harness(state_dir, clock, grace) as core:
        h.attach(core)
        yield h


def types(events: list[Event]) -> list[EventType]:
    return [e.type for e in events]


async def test_commands_are_on_disk_when_answered(tmp_path: Path) -> None:
    clock = FakeClock()
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        await h.published_until(lambda p: len(p) == 1)
        reserved = await h.authority.reserve("r", 60, QUEUED)
        row = h.on_disk("r")
        assert row is not None
        assert (row["hold_kind"], row["hold_key"]) == ("reserved", reserved.key)
        assert row["hold_expires"] == clock.now + 60
        locked = await h.authority.lock("r", reserved.key, BUILD, 30)
        row = h.on_disk("r")
        assert row is not None
        assert (row["hold_kind"], row["holder_url"]) == ("locked", BUILD.url)
        renewed = await h.authority.renew("r", locked.key, 90)
        row = h.on_disk("r")
        assert row is not None
        assert row["hold_expires"] == renewed.expires == clock.now + 90
        res = await h.authority.disable("r", "repairs")
        assert not res.enabled
        row = h.on_disk("r")
        assert row is not None
        assert (row["enabled"], row["disabled_reason"]) == (0, "repairs")
        res = await h.authority.enable("r")
        assert res.enabled
        released = await h.authority.release("r", locked.key)
        assert released.key == reserved.key
        row = h.on_disk("r")
        assert row is not None
        assert row["hold_key"] is None
        assert row["enabled"] == 1
        history = await h.authority.history("r", 10)
        assert [(e.kind, e.end_reason) for e in history] == [(HoldKind.LOCKED, EndReason.RELEASED)]
    # Every change was published after its commit, in order.
    assert types(h.published) == [
        EventType.ADDED,
        EventType.RESERVED,
        EventType.LOCKED,
        EventType.RENEWED,
        EventType.DISABLED,
        EventType.ENABLED,
        EventType.RELEASED,
    ]


async def test_published_only_after_commit(tmp_path: Path) -> None:
    clock = FakeClock()
    behind: list[str] = []
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        await h.published_until(lambda p: len(p) == 1)

        def check(e: Event) -> None:
            # The disk already has this change (or a later one), never less.
            row = h.on_disk(e.resource.id)
            if row is None:  # (an assert here would be swallowed by the bus)
                behind.append("no row")
            elif int(row["disabled_reason"] or 0) < int(e.resource.disabled_reason or 0):
                behind.append(e.resource.disabled_reason)

        h.authority.bus.subscribe(check)
        # Many commands at once: they share commits, and are heard in order.
        await asyncio.gather(*(h.authority.disable("r", str(n)) for n in range(1, 101)))
    assert behind == []
    reasons = [e.resource.disabled_reason for e in h.published[1:]]
    assert reasons == [str(n) for n in range(1, 101)]


async def test_a_group_subscriber_hears_a_group_commit_at_once_before_its_answers(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    groups: list[list[str]] = []
    answered: list[str] = []
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        await h.published_until(lambda p: len(p) == 1)
        h.authority.bus.subscribe_groups(
            lambda events: groups.append([e.resource.disabled_reason for e in events])
        )
        h.authority.bus.subscribe(lambda e: answered.append("heard " + e.resource.disabled_reason))

        async def disable(n: int) -> None:
            await h.authority.disable("r", str(n))
            answered.append(f"answered {n}")

        # Queued together: most share commits, and each group is heard as one.
        await asyncio.gather(*(disable(n) for n in range(1, 51)))
    assert [r for group in groups for r in group] == [str(n) for n in range(1, 51)]
    assert len(groups) < 50
    for n in range(1, 51):  # every change is heard before it is answered
        assert answered.index(f"heard {n}") < answered.index(f"answered {n}")


async def test_answer_without_changes_waits_for_the_change_it_reports(tmp_path: Path) -> None:
    """A lock asked for twice at once: the second answer (no change of its own)
    comes only once the first one's lock is on disk."""
    clock = FakeClock()
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        reserved = await h.authority.reserve("r", 60, QUEUED)
        gate = Gate(tmp_path)
        held = gate.hold(h.store)  # the writer waits for the test
        await gate.closed()
        first = asyncio.ensure_future(h.authority.lock("r", reserved.key, BUILD))
        second = asyncio.ensure_future(h.authority.lock("r", reserved.key, BUILD))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not first.done()
        assert not second.done(), "answered before the lock it reports was on disk"
        gate.open()
        assert await held
        hold = await second
        row = h.on_disk("r")
        assert row is not None
        assert (row["hold_kind"], row["hold_key"]) == ("locked", hold.key)
        assert await first == hold


async def test_refusal_writes_and_publishes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        hold = await h.authority.reserve("r", 60, QUEUED)
        before = list(h.published)
        with pytest.raises(Refused) as info:
            await h.authority.lock("r", "guess", BUILD)
        assert info.value.code is Code.WRONG_KEY
        with pytest.raises(Refused) as info:
            await h.authority.reserve("nope", 60, QUEUED)
        assert info.value.code is Code.UNKNOWN_RESOURCE
        with pytest.raises(Refused) as info:
            await h.authority.history("nope", 10)
        assert info.value.code is Code.UNKNOWN_RESOURCE
        row = h.on_disk("r")
        assert row is not None
        assert row["hold_key"] == hold.key
    assert h.published == before


async def test_sources_are_recorded_without_waiting(tmp_path: Path) -> None:
    clock = FakeClock()
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("phone", "Pixel", Kind.ANDROID, metadata={"a": "1"}))
        h.authority.set_health("phone", "unauthorized")
        h.authority.vanish("phone")
        events = await h.published_until(lambda p: len(p) == 3)
        assert types(events) == [EventType.ADDED, EventType.UPDATED, EventType.UPDATED]
        assert events[1].resource.health == "unauthorized"
        assert not events[2].resource.present
        row = h.on_disk("phone")
        assert row is not None
        assert row["name"] == "Pixel"


async def test_timer_expires_reservation_on_time(tmp_path: Path) -> None:
    """The real clock and the real timer: a short reservation ends by itself."""
    async with harness(tmp_path, time.time) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        hold = await h.authority.reserve("r", 0.05, QUEUED)
        events = await h.published_until(lambda p: EventType.EXPIRED in types(p))
        assert types(events) == [EventType.ADDED, EventType.RESERVED, EventType.EXPIRED]
        assert events[-1].hold == hold
        assert events[-1].ended is EndReason.RESERVATION_EXPIRED
        row = h.on_disk("r")
        assert row is not None
        assert row["hold_key"] is None
        with pytest.raises(Refused) as info:
            await h.authority.lock("r", hold.key, BUILD)
        assert info.value.code is Code.EXPIRED
        history = await h.authority.history("r", 10)
        assert [(e.end_reason, e.ended_at) for e in history] == [
            (EndReason.RESERVATION_EXPIRED, hold.expires)
        ]


async def test_timer_ends_grace_period(tmp_path: Path) -> None:
    async with harness(tmp_path, time.time, grace=0.05) as h:
        h.authority.describe(Description("r", "R", Kind.USB))
        hold = await h.authority.lock("r", None, BUILD)
        h.authority.vanish("r")
        events = await h.published_until(lambda p: EventType.GONE in types(p))
        assert types(events) == [
            EventType.ADDED,
            EventType.LOCKED,
            EventType.UPDATED,
            EventType.GONE,
        ]
        assert events[-1].resource.hold == hold  # the hold outlives the device
        row = h.on_disk("r")
        assert row is not None
        assert row["gone"] == 1


async def test_start_applies_deadlines_passed_while_down(tmp_path: Path) -> None:
    clock = FakeClock()
    async with harness(tmp_path, clock) as h:
        h.authority.describe(Description("r", "R", Kind.STATIC))
        h.authority.describe(Description("s", "S", Kind.USB))
        key = (await h.authority.reserve("r", 60, QUEUED)).key
    clock.advance(3600)  # the agent was down for an hour
    async with harness(tmp_path, clock) as h:
        events = await h.published_until(lambda p: len(p) >= 1)
        assert [(e.type, e.resource.id) for e in events] == [(EventType.EXPIRED, "r")]
        row = h.on_disk("r")
        assert row is not None
        assert row["hold_key"] is None
        # Nothing is present until a source says so.
        assert not any(r.present for r in h.registry.resources())
        with pytest.raises(Refused) as info:
            await h.authority.lock("r", key, BUILD)
        assert info.value.code is Code.EXPIRED
        h.authority.describe(Description("r", "R", Kind.STATIC))
        hold = await h.authority.lock("r", None, BUILD)
        assert hold.kind is HoldKind.LOCKED

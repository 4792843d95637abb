"""The caller the API sets reaches exactly the events its command caused (agent/actions.py).

The real core (build_core), a fake clock: a command that applies an expiry on
its way does not become that expiry's caller; the agent's own releases and
what time does carry none; a caller set for one task is not seen by another.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.actions import CALLER
from agent.model import Action, Caller, Description, EndReason, Event, EventType, Kind
from tests.support.clock import FakeClock
from tests.support.core import core_harness
from tests.support.holders import BUILD, OTHER, QUEUED

ALICE = Caller("10.0.0.5", "ci")


async def test_a_command_stamps_its_own_events_only(tmp_path: Path) -> None:
    clock = FakeClock()
    async with core_harness(tmp_path, clock=clock) as core:
        heard: list[Event] = []
        core.bus.subscribe(heard.append)
        core.authority.describe(Description("r", "R", Kind.STATIC))
        await core.authority.reserve("r", 5, QUEUED)  # nobody's: no caller set
        clock.advance(10)
        token = CALLER.set(ALICE)
        try:
            # The reservation ran out before this command: applying it is not ALICE's doing.
            await core.authority.reserve("r", 60, OTHER)
        finally:
            CALLER.reset(token)
        await asyncio.sleep(0)
        stamped = [(e.type, e.caller) for e in heard if e.type is not EventType.ADDED]
        assert stamped == [
            (EventType.RESERVED, None),
            (EventType.EXPIRED, None),
            (EventType.RESERVED, ALICE),
        ]
        actions = await core.authority.actions("r", 10)
        assert [(a.action, a.caller) for a in actions] == [
            (Action.RESERVE, ALICE),
            (Action.EXPIRY, None),
            (Action.RESERVE, None),
        ]


async def test_the_agents_own_release_has_no_caller_even_inside_a_request(tmp_path: Path) -> None:
    async with core_harness(tmp_path) as core:
        core.authority.describe(Description("r", "R", Kind.STATIC))
        token = CALLER.set(ALICE)
        try:
            hold = await core.authority.lock("r", None, BUILD)
            # As the sessions' gate does when provisioning failed, within the Lock request.
            await core.authority.release("r", hold.key, ended=EndReason.PROVISIONING_FAILED)
        finally:
            CALLER.reset(token)
        [release, lock] = await core.authority.actions("r", 2)
        assert (lock.action, lock.caller) == (Action.LOCK, ALICE)
        assert (release.action, release.caller) == (Action.RELEASE, None)
        assert release.detail == "by the agent: provisioning failed"


async def test_a_caller_stays_with_its_own_task(tmp_path: Path) -> None:
    async with core_harness(tmp_path) as core:
        for rid in ("a", "b"):
            core.authority.describe(Description(rid, rid, Kind.STATIC))

        async def as_caller(rid: str, caller: Caller | None) -> None:
            CALLER.set(caller)  # each task runs in its own copy of the context
            await asyncio.sleep(0)
            await core.authority.reserve(rid, 60, QUEUED)

        await asyncio.gather(as_caller("a", ALICE), as_caller("b", None))
        assert [a.caller for a in await core.authority.actions("a", 1)] == [ALICE]
        assert [a.caller for a in await core.authority.actions("b", 1)] == [None]


async def test_sinks_hear_events_outside_the_requests_context(tmp_path: Path) -> None:
    async with core_harness(tmp_path) as core:
        core.authority.describe(Description("r", "R", Kind.STATIC))
        seen: list[tuple[EventType, Caller | None, Caller | None]] = []
        core.bus.subscribe(lambda e: seen.append((e.type, e.caller, CALLER.get())))
        token = CALLER.set(ALICE)
        try:
            await core.authority.reserve("r", 60, QUEUED)
        finally:
            CALLER.reset(token)
        # The event names its caller; what a sink then does is nobody's request.
        assert (EventType.RESERVED, ALICE, None) in seen

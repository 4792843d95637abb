"""Resources leaving for good: retired from the config, or forgotten by an administrator."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.model import Code, Description, EndReason, Event, EventType, Kind, Refused, Resource
from agent.registry import Registry
from tests.support.clock import FakeClock
from tests.support.core import core_harness
from tests.support.holders import BUILD, PERSON, numbered_keys


@pytest.fixture
def reg(clock: FakeClock) -> Registry:
    registry = Registry(clock, grace=30.0, key_source=numbered_keys())
    for rid in ("printer", "phone"):
        registry.describe(Description(rid, rid, Kind.STATIC))
    return registry


def types(events: list[Event]) -> list[EventType]:
    return [e.type for e in events]


def code_of(fn: object, *args: object) -> Code:
    assert callable(fn)
    with pytest.raises(Refused) as info:
        fn(*args)
    return info.value.code


def test_a_free_resource_is_retired_at_once(reg: Registry) -> None:
    events = reg.retire("printer")
    assert types(events) == [EventType.REMOVED]
    assert events[0].resource.id == "printer"
    assert [r.id for r in reg.resources()] == ["phone"]
    assert code_of(reg.reserve, "printer", 10, BUILD) is Code.UNKNOWN_RESOURCE


def test_a_held_resource_is_kept_until_its_release(reg: Registry) -> None:
    hold, _ = reg.lock("printer", None, BUILD)
    assert reg.retire("printer") == []
    assert reg.get("printer").hold == hold  # its holder keeps it
    _, events = reg.release("printer", hold.key)
    assert types(events) == [EventType.RELEASED, EventType.REMOVED]
    assert "printer" not in {r.id for r in reg.resources()}


def test_a_retired_lease_that_runs_out_removes_it(reg: Registry, clock: FakeClock) -> None:
    reg.lock("printer", None, BUILD, lease=5)
    reg.retire("printer")
    clock.advance(6)
    assert types(reg.tick()) == [EventType.EXPIRED, EventType.REMOVED]
    assert reg.next_deadline() is None


def test_a_refused_command_after_the_expiry_still_removes_it_later(
    reg: Registry, clock: FakeClock
) -> None:
    reg.lock("printer", None, BUILD, lease=5)
    reg.retire("printer")
    clock.advance(6)
    # The expiry applied lazily by this refused release is undone, then applied by tick.
    assert code_of(reg.release, "printer", "not-the-key") in (Code.UNKNOWN_RESOURCE, Code.EXPIRED)
    assert types(reg.tick()) == [EventType.EXPIRED, EventType.REMOVED]


def test_declared_again_it_is_not_retired(reg: Registry) -> None:
    hold, _ = reg.lock("printer", None, BUILD)
    reg.retire("printer")
    reg.describe(Description("printer", "printer", Kind.STATIC))
    _, events = reg.release("printer", hold.key)
    assert types(events) == [EventType.RELEASED]
    assert reg.get("printer").state == "free"


def test_forget_drops_only_an_absent_resource_nobody_holds(reg: Registry) -> None:
    assert code_of(reg.forget, "phone") is Code.PRESENT
    assert code_of(reg.forget, "nope") is Code.UNKNOWN_RESOURCE
    hold, _ = reg.lock("phone", None, PERSON)
    reg.vanish("phone")
    assert code_of(reg.forget, "phone") is Code.HELD
    reg.release("phone", hold.key)
    events = reg.forget("phone")
    assert types(events) == [EventType.REMOVED]
    assert [r.id for r in reg.resources()] == ["printer"]


def test_forget_waits_for_a_resource_being_cleaned(clock: FakeClock) -> None:
    reg = Registry(clock, needs_session=lambda res: True)
    reg.describe(Description("phone", "phone", Kind.ANDROID))
    hold, _ = reg.lock("phone", None, PERSON)
    reg.provisioned("phone", hold.key, None, 3)
    reg.release("phone", hold.key)
    reg.vanish("phone")
    assert code_of(reg.forget, "phone") is Code.CLEANING
    reg.cleaned("phone", None)
    assert types(reg.forget("phone")) == [EventType.REMOVED]


def test_a_retired_resource_being_cleaned_goes_when_clean(clock: FakeClock) -> None:
    reg = Registry(clock, needs_session=lambda res: True)
    reg.describe(Description("phone", "phone", Kind.STATIC))
    hold, _ = reg.lock("phone", None, PERSON)
    reg.provisioned("phone", hold.key, None, 3)
    reg.retire("phone")
    _, events = reg.release("phone", hold.key)
    assert types(events) == [EventType.RELEASED]  # cleaning first
    assert types(reg.cleaned("phone", None)) == [EventType.CLEANED, EventType.REMOVED]


async def test_a_removed_resource_is_deleted_from_the_store(tmp_path: Path) -> None:
    async with core_harness(tmp_path) as core:
        core.authority.describe(Description("printer", "printer", Kind.STATIC))
        core.authority.describe(Description("scope", "scope", Kind.STATIC))
        hold = await core.authority.lock("printer", None, PERSON)
        await core.authority.release("printer", hold.key)
        core.authority.retire("scope")
        core.authority.vanish("printer")
        gone: Resource = await core.authority.forget("printer")
        assert gone.id == "printer"
    async with core_harness(tmp_path) as core:
        assert core.snapshot() == []
        # The history stays: who held it, and how that ended.
        [entry] = await core.store.history("printer")
        assert entry.end_reason is EndReason.RELEASED

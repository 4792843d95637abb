"""The registry's rules for sessions: provisioning on lock, cleaning after, quarantine."""

from __future__ import annotations

import pytest

from agent.model import (
    Code,
    Description,
    EndReason,
    EventType,
    FaultKind,
    Kind,
    Phase,
    Refused,
    Resource,
    ResourceState,
)
from agent.registry import Registry
from tests.support.clock import FakeClock
from tests.support.holders import BUILD, PERSON, QUEUED, numbered_keys


def boards_only(res: Resource) -> bool:
    return res.metadata.get("type") == "board"


@pytest.fixture
def reg(clock: FakeClock) -> Registry:
    registry = Registry(clock, key_source=numbered_keys(), needs_session=boards_only)
    registry.describe(Description("b1", "Board", Kind.STATIC, metadata={"type": "board"}))
    registry.describe(Description("p1", "Printer", Kind.STATIC, metadata={"type": "printer"}))
    return registry


def refused(code: Code, fn: object, *args: object) -> None:
    assert callable(fn)
    with pytest.raises(Refused) as info:
        fn(*args)
    assert info.value.code is code, info.value.message


def test_a_lock_with_a_session_is_provisioning_until_provisioned(reg: Registry) -> None:
    hold, events = reg.lock("b1", None, PERSON)
    assert events[0].resource.phase is Phase.PROVISIONING
    assert reg.get("b1").state is ResourceState.PROVISIONING
    [event] = reg.provisioned("b1", hold.key, None, quarantine_after=3)
    assert event.type is EventType.PROVISIONED and event.resource.phase is None
    assert reg.get("b1").state is ResourceState.LOCKED
    # A resource no table matches has no session: locked at once.
    _, events = reg.lock("p1", None, PERSON)
    assert events[0].resource.phase is None


def test_a_reservation_becomes_provisioning_only_when_locked(reg: Registry) -> None:
    hold, events = reg.reserve("b1", 60, QUEUED)
    assert events[0].resource.phase is None
    _, events = reg.lock("b1", hold.key, BUILD)
    assert events[0].resource.phase is Phase.PROVISIONING
    # A reservation that ends was never a lock: nothing to clean.
    other, _ = reg.reserve("p1", 60, QUEUED)
    _, events = reg.release("p1", other.key)
    assert events[0].resource.phase is None


def test_after_a_lock_the_resource_is_cleaning_and_refuses_new_holds(reg: Registry) -> None:
    hold, _ = reg.lock("b1", None, PERSON)
    reg.provisioned("b1", hold.key, None, 3)
    _, events = reg.release("b1", hold.key)
    assert events[0].type is EventType.RELEASED and events[0].resource.phase is Phase.CLEANING
    assert reg.get("b1").state is ResourceState.CLEANING
    refused(Code.CLEANING, reg.reserve, "b1", 60, QUEUED)
    refused(Code.CLEANING, reg.lock, "b1", None, PERSON)
    [event] = reg.cleaned("b1", None)
    assert event.type is EventType.CLEANED and reg.get("b1").state is ResourceState.FREE
    reg.reserve("b1", 60, QUEUED)


def test_an_expired_lease_is_cleaned_too(reg: Registry, clock: FakeClock) -> None:
    reg.lock("b1", None, PERSON, lease=10)
    clock.advance(11)
    [event] = reg.tick()
    assert event.type is EventType.EXPIRED and event.ended is EndReason.LEASE_EXPIRED
    assert event.resource.phase is Phase.CLEANING


def test_a_failed_teardown_leaves_the_resource_unhealthy_until_enabled(reg: Registry) -> None:
    hold, _ = reg.lock("b1", None, PERSON)
    reg.release("b1", hold.key)
    reg.cleaned("b1", "uninstall failed")
    res = reg.get("b1")
    assert res.state is ResourceState.UNHEALTHY and not res.available
    assert res.fault is not None and res.fault.kind is FaultKind.TEARDOWN_FAILED
    assert res.problem == "teardown failed: uninstall failed"
    refused(Code.UNHEALTHY, reg.reserve, "b1", 60, QUEUED)
    [event] = reg.enable("b1")
    assert event.type is EventType.ENABLED and reg.get("b1").state is ResourceState.FREE


def test_quarantine_after_failures_in_a_row_and_enable_resets_it(reg: Registry) -> None:
    for attempt in range(1, 4):
        hold, _ = reg.lock("b1", None, PERSON)
        reg.provisioned("b1", hold.key, f"no boot {attempt}", quarantine_after=3)
        reg.release("b1", hold.key, ended=EndReason.PROVISIONING_FAILED)
        reg.cleaned("b1", None)
        assert reg.get("b1").failures == attempt
    res = reg.get("b1")
    assert res.state is ResourceState.QUARANTINED and not res.available
    assert res.fault is not None and "no boot 3" in res.fault.reason
    refused(Code.QUARANTINED, reg.lock, "b1", None, PERSON)
    reg.enable("b1")
    res = reg.get("b1")
    assert res.state is ResourceState.FREE and res.failures == 0 and res.fault is None


def test_a_success_clears_the_count_of_failures(reg: Registry) -> None:
    hold, _ = reg.lock("b1", None, PERSON)
    reg.provisioned("b1", hold.key, "flaky", 3)
    assert reg.get("b1").failures == 1
    reg.release("b1", hold.key)
    reg.cleaned("b1", None)
    hold, _ = reg.lock("b1", None, PERSON)
    reg.provisioned("b1", hold.key, None, 3)
    assert reg.get("b1").failures == 0


def test_late_outcomes_of_a_lock_that_is_gone_change_nothing(reg: Registry) -> None:
    hold, _ = reg.lock("b1", None, PERSON)
    assert reg.provisioned("b1", "another key", None, 3) == []
    reg.release("b1", hold.key)
    assert reg.provisioned("b1", hold.key, "too late", 3) == []
    assert reg.get("b1").failures == 0
    reg.cleaned("b1", None)
    assert reg.cleaned("b1", "twice") == []
    assert reg.get("b1").fault is None


def test_phases_survive_a_restore(reg: Registry, clock: FakeClock) -> None:
    hold, _ = reg.lock("b1", None, PERSON)
    again = Registry(clock, needs_session=boards_only)
    again.restore(reg.resources())
    assert again.get("b1").phase is Phase.PROVISIONING
    reg.release("b1", hold.key)
    again = Registry(clock, needs_session=boards_only)
    again.restore(reg.resources())
    assert again.get("b1").phase is Phase.CLEANING

"""The lock rules, one at a time, on a registry with a fake clock (no sleeps)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.model import (
    MAX_SECONDS,
    Code,
    Description,
    EndReason,
    Event,
    EventType,
    Hold,
    HoldKind,
    Kind,
    Refused,
    Resource,
)
from agent.registry import KEYS_PER_READ, KeySource, Registry
from tests.support.clock import FakeClock
from tests.support.holders import BUILD, OTHER, PERSON, QUEUED, numbered_keys

GRACE = 30.0


@pytest.fixture
def reg(clock: FakeClock) -> Registry:
    registry = Registry(clock, grace=GRACE, key_source=numbered_keys())
    for rid in ("phone1", "phone2"):
        registry.describe(Description(rid, f"Phone {rid}", Kind.ANDROID, metadata={"a": "b"}))
    return registry


def types(events: list[Event]) -> list[EventType]:
    return [e.type for e in events]


def refused(code: Code, fn: object, *args: object) -> Refused:
    """Call ``fn(*args)``, expect a refusal with ``code``, answer it."""
    assert callable(fn)
    with pytest.raises(Refused) as info:
        fn(*args)
    assert info.value.code is code, info.value.message
    assert info.value.message == str(info.value)
    return info.value


# ------------------------------------------------------------------ reserve


def test_reserve_free_resource(reg: Registry, clock: FakeClock) -> None:
    hold, events = reg.reserve("phone1", 60, QUEUED)
    assert hold == Hold(HoldKind.RESERVED, "key-0", QUEUED, clock.now, clock.now + 60, 60)
    assert types(events) == [EventType.RESERVED]
    (event,) = events
    assert event.hold == hold
    assert event.resource.hold == hold
    assert event.resource.state == "reserved"
    assert reg.get("phone1").hold == hold
    assert reg.get("phone2").hold is None


def test_real_keys_are_unguessable() -> None:
    new_key = KeySource()
    count = 2 * KEYS_PER_READ + 1  # across refills of the random bytes
    keys = {new_key() for _ in range(count)}
    assert len(keys) == count
    for key in keys:
        assert len(key) == 24  # 18 random bytes
        assert key.replace("-", "").replace("_", "").isalnum()


def test_registry_uses_real_keys_by_default(clock: FakeClock) -> None:
    registry = Registry(clock)
    registry.describe(Description("r", "R", Kind.USB))
    first, _ = registry.reserve("r", 10, QUEUED)
    registry.release("r", first.key)
    second, _ = registry.reserve("r", 10, QUEUED)
    assert first.key != second.key
    assert len(second.key) >= 24


def test_reserve_unknown_resource(reg: Registry) -> None:
    err = refused(Code.UNKNOWN_RESOURCE, reg.reserve, "nope", 60, QUEUED)
    assert "'nope'" in err.message


def test_reserve_disabled(reg: Registry) -> None:
    reg.disable("phone1", "screen cracked")
    err = refused(Code.DISABLED, reg.reserve, "phone1", 60, QUEUED)
    assert "phone1" in err.message
    assert "screen cracked" in err.message


def test_reserve_absent(reg: Registry) -> None:
    reg.vanish("phone1")
    err = refused(Code.ABSENT, reg.reserve, "phone1", 60, QUEUED)
    assert "phone1" in err.message


def test_reserve_unhealthy(reg: Registry) -> None:
    reg.set_health("phone1", "adb unauthorized")
    err = refused(Code.UNHEALTHY, reg.reserve, "phone1", 60, QUEUED)
    assert "adb unauthorized" in err.message
    reg.set_health("phone1", None)
    hold, _ = reg.reserve("phone1", 60, QUEUED)
    assert hold.kind is HoldKind.RESERVED


def test_reserve_held_by_someone_else(reg: Registry) -> None:
    reg.reserve("phone1", 60, QUEUED)
    err = refused(Code.HELD, reg.reserve, "phone1", 60, OTHER)
    assert QUEUED.url in err.message
    # Same system, other job: still someone else.
    refused(Code.HELD, reg.reserve, "phone1", 60, BUILD)


def test_reserve_locked_resource_even_by_locker(reg: Registry) -> None:
    hold, _ = reg.lock("phone1", None, PERSON)
    err = refused(Code.HELD, reg.reserve, "phone1", 60, PERSON)
    assert "locked by alice" in err.message
    assert reg.get("phone1").hold == hold


def test_same_holder_reserving_again_keeps_key_new_expiry(reg: Registry, clock: FakeClock) -> None:
    first, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(50)
    again, events = reg.reserve("phone1", 120, QUEUED)
    assert again.key == first.key
    assert again.since == first.since
    assert again.expires == clock.now + 120
    assert again.duration == 120
    assert types(events) == [EventType.RENEWED]
    assert events[0].hold == again
    clock.advance(100)  # past the first deadline, before the second
    assert reg.tick() == []
    assert reg.get("phone1").hold == again


def test_reserving_own_expired_reservation_gets_new_key(reg: Registry, clock: FakeClock) -> None:
    first, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(60)
    second, events = reg.reserve("phone1", 60, QUEUED)
    assert second.key != first.key
    assert types(events) == [EventType.EXPIRED, EventType.RESERVED]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), MAX_SECONDS + 1])
def test_reserve_bad_timeout(reg: Registry, timeout: float) -> None:
    err = refused(Code.INVALID_ARGUMENT, reg.reserve, "phone1", timeout, QUEUED)
    assert "timeout" in err.message
    assert reg.get("phone1").hold is None


def test_reserve_longest_timeout_accepted(reg: Registry) -> None:
    hold, _ = reg.reserve("phone1", MAX_SECONDS, QUEUED)
    assert hold.duration == MAX_SECONDS


# --------------------------------------------------------------------- lock


def test_lock_reservation_with_key_as_another_holder(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(5)
    locked, events = reg.lock("phone1", reserved.key, BUILD)
    assert locked == Hold(HoldKind.LOCKED, reserved.key, BUILD, clock.now, None, None)
    assert types(events) == [EventType.LOCKED]
    assert events[0].resource.hold == locked
    assert events[0].resource.state == "locked"
    # A lock without lease never expires.
    assert reg.next_deadline() is None
    clock.advance(MAX_SECONDS * 10)
    assert reg.tick() == []
    assert reg.get("phone1").hold == locked


def test_lock_again_with_key_answers_same_hold(reg: Registry) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    locked, _ = reg.lock("phone1", reserved.key, BUILD)
    again, events = reg.lock("phone1", reserved.key, BUILD)
    assert again == locked
    assert events == []


def test_lock_free_resource_without_key(reg: Registry, clock: FakeClock) -> None:
    hold, events = reg.lock("phone1", None, PERSON)
    assert hold == Hold(HoldKind.LOCKED, "key-0", PERSON, clock.now)
    assert types(events) == [EventType.LOCKED]
    assert events[0].hold == hold


def test_lock_without_key_on_reserved_is_held(reg: Registry) -> None:
    reg.reserve("phone1", 60, QUEUED)
    err = refused(Code.HELD, reg.lock, "phone1", None, PERSON)
    assert "reserved by" in err.message
    assert QUEUED.url in err.message


def test_lock_with_wrong_key(reg: Registry) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    refused(Code.WRONG_KEY, reg.lock, "phone1", "not-the-key", BUILD)
    assert reg.get("phone1").hold == reserved
    # A key of another resource is a wrong key here.
    other, _ = reg.reserve("phone2", 60, OTHER)
    refused(Code.WRONG_KEY, reg.lock, "phone1", other.key, BUILD)


def test_lock_with_key_on_free_resource_is_wrong_key(reg: Registry) -> None:
    err = refused(Code.WRONG_KEY, reg.lock, "phone1", "made-up", BUILD)
    assert "phone1" in err.message
    assert reg.get("phone1").hold is None


def test_lock_expired_reservation(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(60)  # the deadline itself is too late
    err = refused(Code.EXPIRED, reg.lock, "phone1", reserved.key, BUILD)
    assert "expired" in err.message
    assert reg.get("phone1").hold is None


def test_lock_expired_reservation_taken_by_someone_else(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(61)
    theirs, _ = reg.reserve("phone1", 60, OTHER)
    refused(Code.EXPIRED, reg.lock, "phone1", reserved.key, BUILD)
    refused(Code.EXPIRED, reg.release, "phone1", reserved.key)
    assert reg.get("phone1").hold == theirs


def test_lock_just_before_deadline(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(59.999)
    locked, _ = reg.lock("phone1", reserved.key, BUILD)
    clock.advance(10)
    assert reg.tick() == []
    assert reg.get("phone1").hold == locked


def test_lock_someone_elses_lock(reg: Registry) -> None:
    reg.lock("phone1", None, PERSON)
    refused(Code.HELD, reg.lock, "phone1", None, BUILD)
    refused(Code.WRONG_KEY, reg.lock, "phone1", "guess", BUILD)


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda r: r.disable("phone1", "x"), Code.DISABLED),
        (lambda r: r.vanish("phone1"), Code.ABSENT),
        (lambda r: r.set_health("phone1", "offline"), Code.UNHEALTHY),
    ],
)
def test_lock_without_key_needs_usable(reg: Registry, setup: object, code: Code) -> None:
    assert callable(setup)
    setup(reg)
    refused(code, reg.lock, "phone1", None, PERSON)
    refused(Code.UNKNOWN_RESOURCE, reg.lock, "nope", None, PERSON)


def test_lock_with_lease_bad_value(reg: Registry) -> None:
    err = refused(Code.INVALID_ARGUMENT, reg.lock, "phone1", None, PERSON, 0)
    assert "lease" in err.message


# ------------------------------------------------------------------ release


def test_release_with_key(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    locked, _ = reg.lock("phone1", reserved.key, BUILD)
    released, events = reg.release("phone1", reserved.key)
    assert released == locked
    assert types(events) == [EventType.RELEASED]
    assert events[0].hold == locked
    assert events[0].ended is EndReason.RELEASED
    assert events[0].resource.hold is None
    assert events[0].resource.state == "free"
    assert reg.get("phone1").hold is None
    # The released key is dead.
    refused(Code.NOT_HELD, reg.release, "phone1", reserved.key)
    refused(Code.WRONG_KEY, reg.lock, "phone1", reserved.key, BUILD)


def test_release_reservation(reg: Registry) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    released, events = reg.release("phone1", reserved.key)
    assert released == reserved
    assert types(events) == [EventType.RELEASED]


def test_release_wrong_key(reg: Registry) -> None:
    hold, _ = reg.lock("phone1", None, PERSON)
    err = refused(Code.WRONG_KEY, reg.release, "phone1", "guess")
    assert "phone1" in err.message
    refused(Code.HELD, reg.release, "phone1", None)
    assert reg.get("phone1").hold == hold


def test_release_free(reg: Registry) -> None:
    err = refused(Code.NOT_HELD, reg.release, "phone1", "anything")
    assert "phone1" in err.message
    refused(Code.NOT_HELD, reg.release, "phone1", None, True)
    refused(Code.UNKNOWN_RESOURCE, reg.release, "nope", "k")


def test_release_expired(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(61)
    reg.tick()
    refused(Code.EXPIRED, reg.release, "phone1", reserved.key)


def test_forced_release(reg: Registry) -> None:
    hold, _ = reg.lock("phone1", None, PERSON)
    released, events = reg.release("phone1", None, True)
    assert released == hold
    assert types(events) == [EventType.RELEASED]
    assert events[0].ended is EndReason.FORCED
    assert reg.get("phone1").hold is None
    hold, _ = reg.lock("phone1", None, PERSON)
    _, events = reg.release("phone1", "wrong", True)
    assert events[0].ended is EndReason.FORCED
    # Forcing with the right key is an ordinary release.
    hold, _ = reg.lock("phone1", None, PERSON)
    _, events = reg.release("phone1", hold.key, True)
    assert events[0].ended is EndReason.RELEASED


def test_release_works_on_absent_disabled_resource(reg: Registry) -> None:
    hold, _ = reg.lock("phone1", None, PERSON)
    reg.disable("phone1")
    reg.vanish("phone1")
    released, _ = reg.release("phone1", hold.key)
    assert released == hold


# ------------------------------------------------------------ expiry, lease


def test_reservation_expires_on_tick(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    assert reg.next_deadline() == clock.now + 60
    clock.advance(59.5)
    assert reg.tick() == []
    clock.advance(0.5)
    events = reg.tick()
    assert types(events) == [EventType.EXPIRED]
    assert events[0].hold == reserved
    assert events[0].ended is EndReason.RESERVATION_EXPIRED
    assert events[0].resource.hold is None
    assert reg.next_deadline() is None
    assert reg.tick() == []
    # Free again for anyone.
    hold, _ = reg.reserve("phone1", 60, OTHER)
    assert hold.holder == OTHER


def test_reservation_expires_lazily(reg: Registry, clock: FakeClock) -> None:
    reg.reserve("phone1", 60, QUEUED)
    clock.advance(120)
    # No tick ran: the next command still sees the reservation gone.
    hold, events = reg.reserve("phone1", 60, OTHER)
    assert types(events) == [EventType.EXPIRED, EventType.RESERVED]
    assert hold.holder == OTHER
    assert reg.get("phone1").hold == hold


def test_reading_shows_deadline_but_tick_reports_it(reg: Registry, clock: FakeClock) -> None:
    reg.reserve("phone1", 60, QUEUED)
    reg.vanish("phone2")
    clock.advance(GRACE * 2)
    assert reg.get("phone1").hold is None
    assert reg.get("phone2").gone
    assert [(r.id, r.hold, r.gone) for r in reg.resources()] == [
        ("phone1", None, False),
        ("phone2", None, True),
    ]
    # Reading changed nothing: the events are not lost but the next tick's,
    # in the order their deadlines passed (grace at 30 s, reservation at 60 s).
    events = reg.tick()
    assert [(e.type, e.resource.id) for e in events] == [
        (EventType.GONE, "phone2"),
        (EventType.EXPIRED, "phone1"),
    ]
    assert reg.tick() == []


def test_refusal_leaves_due_expiry_to_tick(reg: Registry, clock: FakeClock) -> None:
    """A refused command has no events to return, so it must change nothing."""
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    locked, _ = reg.lock("phone2", None, PERSON, 30)
    clock.advance(60)
    refused(Code.EXPIRED, reg.lock, "phone1", reserved.key, BUILD)
    refused(Code.EXPIRED, reg.release, "phone1", reserved.key)
    refused(Code.EXPIRED, reg.renew, "phone1", reserved.key)
    refused(Code.WRONG_KEY, reg.lock, "phone1", "guess", BUILD)
    refused(Code.NOT_HELD, reg.release, "phone2", "guess")
    refused(Code.INVALID_ARGUMENT, reg.reserve, "phone2", -1, OTHER)
    assert types(reg.disable("phone2")) == [EventType.EXPIRED, EventType.DISABLED]
    refused(Code.DISABLED, reg.reserve, "phone2", 60, OTHER)
    events = reg.tick()
    assert [(e.type, e.resource.id, e.hold) for e in events] == [
        (EventType.EXPIRED, "phone1", reserved),
    ]
    refused(Code.EXPIRED, reg.lock, "phone1", reserved.key, BUILD)
    refused(Code.EXPIRED, reg.renew, "phone2", locked.key)


def test_next_deadline_is_earliest(reg: Registry, clock: FakeClock) -> None:
    assert reg.next_deadline() is None
    start = clock.now
    reg.reserve("phone1", 100, QUEUED)
    reg.lock("phone2", None, PERSON, 40)
    assert reg.next_deadline() == start + 40
    reg.vanish("phone1")
    assert reg.next_deadline() == start + GRACE
    clock.advance(GRACE)
    assert types(reg.tick()) == [EventType.GONE]
    assert reg.next_deadline() == start + 40
    clock.advance(10)
    assert types(reg.tick()) == [EventType.EXPIRED]
    assert reg.next_deadline() == start + 100


def test_lease_renewed_then_expires(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    locked, _ = reg.lock("phone1", reserved.key, BUILD, lease=30)
    assert locked.expires == clock.now + 30
    assert locked.duration == 30
    for _ in range(5):
        clock.advance(25)
        renewed, events = reg.renew("phone1", reserved.key)
        assert renewed.expires == clock.now + 30
        assert renewed.since == locked.since
        assert types(events) == [EventType.RENEWED]
        assert events[0].hold == renewed
        assert reg.tick() == []
    clock.advance(30)
    events = reg.tick()
    assert types(events) == [EventType.EXPIRED]
    assert events[0].ended is EndReason.LEASE_EXPIRED
    assert events[0].hold is not None
    assert events[0].hold.kind is HoldKind.LOCKED
    assert reg.get("phone1").state == "free"
    refused(Code.EXPIRED, reg.renew, "phone1", reserved.key)
    refused(Code.EXPIRED, reg.release, "phone1", reserved.key)


def test_renew_with_new_length(reg: Registry, clock: FakeClock) -> None:
    hold, _ = reg.lock("phone1", None, PERSON, 30)
    renewed, _ = reg.renew("phone1", hold.key, 300)
    assert renewed.expires == clock.now + 300
    assert renewed.duration == 300
    clock.advance(200)
    renewed, _ = reg.renew("phone1", hold.key)
    assert renewed.expires == clock.now + 300


def test_renew_lock_without_lease(reg: Registry, clock: FakeClock) -> None:
    hold, _ = reg.lock("phone1", None, PERSON)
    err = refused(Code.NO_LEASE, reg.renew, "phone1", hold.key)
    assert "lease" in err.message
    leased, _ = reg.renew("phone1", hold.key, 10)
    assert leased.expires == clock.now + 10
    clock.advance(10)
    assert types(reg.tick()) == [EventType.EXPIRED]


def test_renew_reservation(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    clock.advance(50)
    renewed, _ = reg.renew("phone1", reserved.key)
    assert renewed.expires == clock.now + 60
    assert renewed.kind is HoldKind.RESERVED


def test_renew_refusals(reg: Registry) -> None:
    hold, _ = reg.lock("phone1", None, PERSON, 30)
    refused(Code.WRONG_KEY, reg.renew, "phone1", "guess")
    refused(Code.WRONG_KEY, reg.renew, "phone2", hold.key)
    refused(Code.INVALID_ARGUMENT, reg.renew, "phone1", hold.key, -5)
    refused(Code.UNKNOWN_RESOURCE, reg.renew, "nope", hold.key)
    assert reg.get("phone1").hold == hold


# --------------------------------------------------------- enable / disable


def test_disable_keeps_existing_hold(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 60, QUEUED)
    events = reg.disable("phone1", "maintenance")
    assert types(events) == [EventType.DISABLED]
    assert events[0].ended is None  # the reason is the resource's, not the event's
    assert events[0].resource.disabled_reason == "maintenance"
    res = events[0].resource
    assert not res.enabled
    assert res.disabled_reason == "maintenance"
    assert not res.available
    assert res.hold == reserved
    # The reservation may still become the lock it was made for...
    locked, _ = reg.lock("phone1", reserved.key, BUILD)
    assert reg.get("phone1").state == "locked"
    # ...and is released normally; then no new hold is taken.
    reg.release("phone1", locked.key)
    assert reg.get("phone1").state == "disabled"
    refused(Code.DISABLED, reg.reserve, "phone1", 60, QUEUED)
    refused(Code.DISABLED, reg.lock, "phone1", None, PERSON)


def test_enable_again(reg: Registry) -> None:
    reg.disable("phone1", "x")
    events = reg.enable("phone1")
    assert types(events) == [EventType.ENABLED]
    assert events[0].resource.enabled
    assert events[0].resource.disabled_reason == "x"  # kept until a new one is given
    assert reg.enable("phone1") == []  # nothing changed, no event
    hold, _ = reg.reserve("phone1", 60, QUEUED)
    assert hold.kind is HoldKind.RESERVED


def test_disable_idempotent_but_reason_change_is_event(reg: Registry) -> None:
    assert types(reg.disable("phone1", "a")) == [EventType.DISABLED]
    assert reg.disable("phone1", "a") == []
    assert reg.disable("phone1") == []  # no reason given: the last one stays
    events = reg.disable("phone1", "b")
    assert types(events) == [EventType.DISABLED]
    assert events[0].resource.disabled_reason == "b"
    reg.enable("phone1")
    [again] = reg.disable("phone1")
    assert (again.resource.enabled, again.resource.disabled_reason) == (False, "b")


def test_enable_disable_unknown(reg: Registry) -> None:
    refused(Code.UNKNOWN_RESOURCE, reg.enable, "nope")
    refused(Code.UNKNOWN_RESOURCE, reg.disable, "nope", "x")


def test_disable_applies_due_expiry_first(reg: Registry, clock: FakeClock) -> None:
    reg.reserve("phone1", 60, QUEUED)
    clock.advance(60)
    assert types(reg.disable("phone1")) == [EventType.EXPIRED, EventType.DISABLED]


# ----------------------------------------------------------------- presence


def test_describe_adds_then_updates(reg: Registry) -> None:
    desc = Description("cam", "Camera", Kind.USB, "a webcam", {"usb.vendor": "046d"})
    events = reg.describe(desc)
    assert types(events) == [EventType.ADDED]
    res = events[0].resource
    assert (res.id, res.name, res.kind, res.description) == ("cam", "Camera", Kind.USB, "a webcam")
    assert dict(res.metadata) == {"usb.vendor": "046d"}
    assert res.present
    assert res.state == "free"
    assert reg.describe(desc) == []  # nothing new
    events = reg.describe(Description("cam", "Camera 2", Kind.USB, "a webcam", {}))
    assert types(events) == [EventType.UPDATED]
    assert events[0].resource.name == "Camera 2"
    assert dict(events[0].resource.metadata) == {}
    assert [r.id for r in reg.resources()] == ["cam", "phone1", "phone2"]
    assert len(reg) == 3


def test_description_metadata_is_copied(reg: Registry) -> None:
    meta = {"a": "1"}
    reg.describe(Description("cam", "Camera", Kind.USB, metadata=meta))
    meta["a"] = "2"
    assert dict(reg.get("cam").metadata) == {"a": "1"}


def test_vanish_keeps_hold_then_gone(reg: Registry, clock: FakeClock) -> None:
    hold, _ = reg.lock("phone1", None, PERSON)
    events = reg.vanish("phone1")
    assert types(events) == [EventType.UPDATED]
    res = events[0].resource
    assert not res.present
    assert res.absent_since == clock.now
    assert res.hold == hold
    assert res.state == "locked"
    assert res.available  # not gone yet: coordinators are not told
    assert reg.vanish("phone1") == []  # already absent
    assert reg.vanish("nope") == []
    clock.advance(GRACE - 0.1)
    assert reg.tick() == []
    clock.advance(0.1)
    events = reg.tick()
    assert types(events) == [EventType.GONE]
    res = events[0].resource
    assert res.gone
    assert not res.available
    assert res.hold == hold
    assert reg.tick() == []
    assert reg.next_deadline() is None
    # Coming back: present again, not gone, hold untouched.
    events = reg.describe(Description("phone1", "Phone phone1", Kind.ANDROID, metadata={"a": "b"}))
    assert types(events) == [EventType.UPDATED]
    res = events[0].resource
    assert res.present
    assert not res.gone
    assert res.absent_since is None
    assert res.hold == hold
    released, _ = reg.release("phone1", hold.key)
    assert released == hold


def test_return_within_grace_is_no_gone(reg: Registry, clock: FakeClock) -> None:
    reserved, _ = reg.reserve("phone1", 600, QUEUED)
    reg.vanish("phone1")
    clock.advance(GRACE - 1)
    events = reg.describe(Description("phone1", "Phone phone1", Kind.ANDROID, metadata={"a": "b"}))
    assert types(events) == [EventType.UPDATED]
    assert events[0].resource.present
    clock.advance(GRACE * 2)
    assert reg.tick() == []
    assert reg.get("phone1").hold == reserved


def test_return_after_grace_without_tick_reports_gone_first(
    reg: Registry, clock: FakeClock
) -> None:
    reg.vanish("phone1")
    clock.advance(GRACE + 5)
    events = reg.describe(Description("phone1", "Phone phone1", Kind.ANDROID, metadata={"a": "b"}))
    assert types(events) == [EventType.GONE, EventType.UPDATED]
    assert events[0].resource.gone
    assert not events[1].resource.gone
    assert reg.tick() == []


def test_source_facts_apply_due_expiry_first(reg: Registry, clock: FakeClock) -> None:
    reg.reserve("phone1", 60, QUEUED)
    reg.reserve("phone2", 60, QUEUED)
    clock.advance(60)
    events = reg.vanish("phone1")
    assert types(events) == [EventType.EXPIRED, EventType.UPDATED]
    assert events[1].resource.hold is None
    events = reg.set_health("phone2", "offline")
    assert types(events) == [EventType.EXPIRED, EventType.UPDATED]
    assert events[1].resource.hold is None


def test_vanished_unheld_can_not_be_held(reg: Registry, clock: FakeClock) -> None:
    reg.vanish("phone1")
    clock.advance(GRACE)
    reg.tick()
    refused(Code.ABSENT, reg.reserve, "phone1", 60, QUEUED)
    assert reg.get("phone1").state == "absent"


def test_set_health(reg: Registry) -> None:
    events = reg.set_health("phone1", "battery low")
    assert types(events) == [EventType.UPDATED]
    assert events[0].resource.health == "battery low"
    assert events[0].resource.state == "unhealthy"
    assert not events[0].resource.available
    assert reg.set_health("phone1", "battery low") == []
    assert types(reg.set_health("phone1", None)) == [EventType.UPDATED]
    assert reg.get("phone1").available
    assert reg.set_health("nope", "x") == []


def test_restore_marks_all_absent(clock: FakeClock) -> None:
    held = Hold(HoldKind.LOCKED, "k1", BUILD, clock.now - 100)
    reserved = Hold(HoldKind.RESERVED, "k2", QUEUED, clock.now - 100, clock.now - 10, 90)
    stored = [
        Resource("a", "A", Kind.ANDROID, hold=held),
        Resource("b", "B", Kind.USB, hold=reserved),
        Resource("c", "C", Kind.STATIC, enabled=False, disabled_reason="broken"),
        Resource("d", "D", Kind.USB, present=False, gone=True, absent_since=clock.now - 1e5),
    ]
    reg = Registry(clock, grace=GRACE)
    reg.restore(stored)
    assert [r.id for r in reg.resources()] == ["a", "b", "c", "d"]
    for res in reg.resources():
        assert not res.present
    assert reg.resources()[0].absent_since == clock.now
    assert reg.resources()[0].hold == held
    assert not reg.resources()[2].enabled
    assert reg.resources()[3].gone
    assert reg.resources()[3].absent_since == clock.now - 1e5
    assert not any(r.present for r in reg.resources())
    # The past reservation deadline is applied by the first tick.
    assert reg.next_deadline() == clock.now - 10
    events = reg.tick()
    assert [(e.type, e.resource.id) for e in events] == [(EventType.EXPIRED, "b")]
    assert events[0].ended is EndReason.RESERVATION_EXPIRED
    # Sources confirm a and c; b never comes back.
    reg.describe(Description("a", "A", Kind.ANDROID))
    reg.describe(Description("c", "C", Kind.STATIC))
    clock.advance(GRACE)
    events = reg.tick()
    assert [(e.type, e.resource.id) for e in events] == [(EventType.GONE, "b")]
    assert reg.get("a").hold == held
    assert reg.get("a").present
    # The restored lock still needs its key.
    refused(Code.WRONG_KEY, reg.release, "a", "k2")
    reg.release("a", "k1")


def test_events_carry_snapshots(reg: Registry, clock: FakeClock) -> None:
    """Every change is an event whose resource is the state right after it."""
    log: list[Event] = []
    hold, events = reg.reserve("phone1", 60, QUEUED)
    log += events
    hold, events = reg.lock("phone1", hold.key, BUILD, 100)
    log += events
    _, events = reg.renew("phone1", hold.key)
    log += events
    log += reg.disable("phone1", "x")
    log += reg.enable("phone1")
    log += reg.vanish("phone1")
    log += reg.describe(Description("phone1", "P", Kind.ANDROID))
    _, events = reg.release("phone1", hold.key)
    log += events
    assert types(log) == [
        EventType.RESERVED,
        EventType.LOCKED,
        EventType.RENEWED,
        EventType.DISABLED,
        EventType.ENABLED,
        EventType.UPDATED,
        EventType.UPDATED,
        EventType.RELEASED,
    ]
    states = [e.resource.state for e in log]
    assert states == ["reserved"] + ["locked"] * 6 + ["free"]
    assert [e.resource.enabled for e in log] == [True, True, True, False, True, True, True, True]
    assert [e.resource.present for e in log] == [True] * 5 + [False, True, True]
    # Snapshots are values: later changes do not alter earlier events.
    assert log[0].resource.hold is not None
    assert log[0].resource.hold.kind is HoldKind.RESERVED
    assert reg.get("phone1").hold is None


# ----------------------------------------------------------------- refusals


def test_refusal_codes_are_the_documented_ones() -> None:
    """Codes are an interface: the table in docs/api.md and the enum agree."""
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    section = doc.split("## Refusal codes", 1)[1]
    table = dict(re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", section, re.MULTILINE))
    assert {int(k): v for k, v in table.items()} == {c.value: c.name for c in Code}


def test_every_refusal_names_its_resource(reg: Registry, clock: FakeClock) -> None:
    """One scenario per rule refusal; each message says which resource and why."""
    reg.describe(Description("off", "Off", Kind.USB))
    reg.disable("off", "flaky cable")
    reg.describe(Description("away", "Away", Kind.USB))
    reg.vanish("away")
    reg.describe(Description("sick", "Sick", Kind.USB))
    reg.set_health("sick", "adb offline")
    held, _ = reg.reserve("phone1", 60, QUEUED)
    old, _ = reg.reserve("phone2", 1, QUEUED)
    clock.advance(1)
    reg.tick()
    nolease, _ = reg.lock("phone2", None, PERSON)
    boards = Registry(clock, needs_session=lambda res: True)
    for rid in ("dirty", "sad"):
        boards.describe(Description(rid, rid, Kind.STATIC))
    cleaned, _ = boards.lock("dirty", None, PERSON)
    boards.release("dirty", cleaned.key)
    failing, _ = boards.lock("sad", None, PERSON)
    boards.provisioned("sad", failing.key, "no boot", quarantine_after=1)
    boards.release("sad", failing.key)
    boards.cleaned("sad", None)
    cases: list[tuple[Code, Callable[[], object], str]] = [
        (Code.UNKNOWN_RESOURCE, lambda: reg.reserve("zz", 1, QUEUED), "no resource with id 'zz'"),
        (Code.DISABLED, lambda: reg.reserve("off", 1, QUEUED), "off is disabled: flaky cable"),
        (Code.ABSENT, lambda: reg.lock("away", None, PERSON), "away is not connected"),
        (Code.UNHEALTHY, lambda: reg.reserve("sick", 1, QUEUED), "sick is not usable: adb offline"),
        (Code.HELD, lambda: reg.reserve("phone1", 1, OTHER), f"phone1 is reserved by {QUEUED.url}"),
        (Code.WRONG_KEY, lambda: reg.release("phone1", "guess"), "wrong key for resource phone1"),
        (
            Code.EXPIRED,
            lambda: reg.lock("phone2", old.key, BUILD),
            "phone2 with this key has expired",
        ),
        (Code.NOT_HELD, lambda: reg.release("off", "k"), "off is not reserved or locked"),
        (Code.INVALID_ARGUMENT, lambda: reg.renew("phone1", held.key, 0), "lease must be"),
        (Code.NO_LEASE, lambda: reg.renew("phone2", nolease.key), "lock on phone2 has no lease"),
        (Code.CLEANING, lambda: boards.reserve("dirty", 1, QUEUED), "dirty is being cleaned"),
        (Code.QUARANTINED, lambda: boards.lock("sad", None, PERSON), "sad is quarantined"),
        (Code.PRESENT, lambda: reg.forget("phone1"), "phone1 is connected"),
    ]
    # The sessions' gate refuses a Lock whose provisioning failed (tests/integration/
    # test_sessions.py), the authority a change the disk did not take (tests/unit/
    # test_rollback.py, tests/integration/test_fault_fsync.py); every other refusal is the
    # registry's.
    unsaved = {Code.NOT_SAVED, Code.SAVE_UNCERTAIN}
    rules = {c for c in Code if 0 < c < 20} - {Code.PROVISIONING_FAILED} - unsaved
    assert {code for code, _, _ in cases} == rules
    for code, command, text in cases:
        err = refused(code, command)
        assert text in err.message, (code, err.message)


# ----------------------------------------------------- the deadline index


# The index is a heap rebuilt when stale entries pile up (about 2 per
# resource + 64); every count of changes up to past two rebuilds is tried.
CHURN = range(140)


def test_lease_expires_after_any_number_of_renewals() -> None:
    """Renewals churn the deadline index; the last deadline must still fire."""
    for renewals in CHURN:
        clock = FakeClock()
        reg = Registry(clock, grace=GRACE)
        reg.describe(Description("r", "R", Kind.USB))
        hold, _ = reg.lock("r", None, PERSON, 10)
        for _ in range(renewals):
            clock.advance(1)
            hold, _ = reg.renew("r", hold.key)
        assert reg.next_deadline() == hold.expires, renewals
        clock.advance(10)
        assert types(reg.tick()) == [EventType.EXPIRED], renewals


def test_refusal_keeps_deadline_indexed() -> None:
    """A refusal undoes a lazy expiry; the expiry must stay due for tick."""
    for renewals in CHURN:
        clock = FakeClock()
        reg = Registry(clock, grace=1000)
        reg.describe(Description("r", "R", Kind.USB))
        hold, _ = reg.reserve("r", 10, QUEUED)
        reg.vanish("r")  # a second deadline (grace) remains once the hold is gone
        for _ in range(renewals):
            clock.advance(0.01)
            hold, _ = reg.renew("r", hold.key)
        clock.advance(10)
        refused(Code.EXPIRED, reg.lock, "r", hold.key, BUILD)
        assert reg.next_deadline() == hold.expires, renewals
        assert types(reg.tick()) == [EventType.EXPIRED], renewals

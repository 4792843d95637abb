"""The registry against a model of live keys, driven by hypothesis.

A few resources, several holders and a fake clock that moves; random
reserve/lock/release/renew/enable/disable/vanish/describe/set_health/tick and
restarts. The model states the rules independently of the code; after every
step the registry must agree with it: same answer (hold or refusal code),
same events, same state, same next deadline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from agent.model import (
    MAX_SECONDS,
    Code,
    Description,
    EndReason,
    Event,
    EventType,
    Hold,
    Holder,
    HoldKind,
    Kind,
    Refused,
    Resource,
)
from agent.registry import Registry
from tests.support.holders import numbered_keys

GRACE = 20.0
RIDS = ("r0", "r1", "r2")
UNKNOWN = "ghost"
HOLDERS = (
    Holder("http://j/", "http://j/queue/item/1/"),
    Holder("http://j/", "http://j/job/a/1/"),
    Holder("http://k/", "alice"),
)

GOOD_SECONDS = [1.0, 30.0, 300.0, 3000.0]
BAD_SECONDS = [0.0, -1.0, math.nan, math.inf, MAX_SECONDS * 2]
# Mostly valid arguments and known ids, so most steps reach the rules.
SECONDS = st.sampled_from(GOOD_SECONDS * 8 + BAD_SECONDS)
LEASES = st.sampled_from([None] * 16 + GOOD_SECONDS * 4 + BAD_SECONDS)
RID = st.sampled_from(RIDS * 4 + (UNKNOWN,))
# Key choices resolved against the model when the rule runs.
LIVE = "<the resource's current or last expired key>"
OTHERS = "<another resource's key>"
NEW = "<a new key>"


@dataclass(frozen=True)
class MHold:
    kind: HoldKind
    key: str
    holder: Holder
    expires: float | None
    duration: float | None


@dataclass(frozen=True)
class MRes:
    present: bool = True
    absent_since: float | None = None
    gone: bool = False
    enabled: bool = True
    reason: str = ""
    health: str | None = None
    hold: MHold | None = None
    expired_key: str | None = None


class Refusal(Exception):
    """The model's refusal."""

    def __init__(self, code: Code) -> None:
        super().__init__(code.name)
        self.code = code


def bad(seconds: float | None) -> bool:
    return seconds is not None and not (0 < seconds <= MAX_SECONDS)


class RegistryMachine(RuleBasedStateMachine):
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.new_key: Callable[[], str] = numbered_keys("k")
        self.reg = Registry(lambda: self.now, grace=GRACE, key_source=self.new_key)
        self.model: dict[str, MRes] = {}
        self.issued: set[str] = set()

    @initialize()
    def describe_all(self) -> None:
        for rid in RIDS:
            events = self.reg.describe(Description(rid, rid.upper(), Kind.USB))
            assert [e.type for e in events] == [EventType.ADDED]
            self.model[rid] = MRes()

    # ------------------------------------------------------------- the model

    def settled(self, rid: str) -> tuple[MRes, list[EventType]]:
        """The model's resource with due deadlines applied, and their events."""
        m = self.model[rid]
        types: list[EventType] = []
        if m.hold is not None and m.hold.expires is not None and m.hold.expires <= self.now:
            m = replace(m, hold=None, expired_key=m.hold.key)
            types.append(EventType.EXPIRED)
        if not m.present and not m.gone:
            assert m.absent_since is not None
            if m.absent_since + GRACE <= self.now:
                m = replace(m, gone=True)
                types.append(EventType.GONE)
        return m, types

    @staticmethod
    def check_usable(m: MRes) -> None:
        if not m.enabled:
            raise Refusal(Code.DISABLED)
        if not m.present:
            raise Refusal(Code.ABSENT)
        if m.health is not None:
            raise Refusal(Code.UNHEALTHY)

    @staticmethod
    def refuse_key(m: MRes, key: str | None) -> Refusal:
        if key is not None and key == m.expired_key:
            return Refusal(Code.EXPIRED)
        if m.hold is None:
            return Refusal(Code.WRONG_KEY)
        if key is None:
            return Refusal(Code.HELD)
        return Refusal(Code.WRONG_KEY)

    def known(self, rid: str) -> None:
        if rid not in self.model:
            raise Refusal(Code.UNKNOWN_RESOURCE)

    def resolve(self, rid: str, choice: str | None) -> str | None:
        if choice == LIVE:
            m = self.model.get(rid, MRes())
            return m.hold.key if m.hold else (m.expired_key or "bogus")
        if choice == OTHERS:
            live = [m.hold.key for r, m in self.model.items() if r != rid and m.hold]
            return live[0] if live else "bogus"
        return choice

    # ------------------------------------------------------------ comparison

    def run(
        self,
        rid: str,
        expect: Callable[[], tuple[MRes, list[EventType]]],
        act: Callable[[], tuple[Hold | None, list[Event]]],
    ) -> Hold | None:
        """Run the command on both; the model's answer must be the registry's."""
        try:
            m, types = expect()
        except Refusal as refusal:
            before = self.reg.get(rid) if rid in self.model else None
            try:
                act()
            except Refused as err:
                assert err.code is refusal.code, (err.code, refusal.code, err.message)
                assert err.message
            else:
                raise AssertionError(f"expected refusal {refusal.code.name}") from None
            # A refusal changes nothing.
            assert before is None or self.reg.get(rid) == before
            return None
        try:
            hold, events = act()
        except Refused as err:
            raise AssertionError(f"refused {err.code.name}: {err.message}") from None
        assert [e.type for e in events] == types
        assert all(e.resource.id == rid for e in events)
        if m.hold is not None and m.hold.key == NEW:
            assert hold is not None
            assert hold.key not in self.issued, "a key was handed out twice"
            self.issued.add(hold.key)
            m = replace(m, hold=replace(m.hold, key=hold.key))
        if hold is not None and EventType.RELEASED not in types:
            self.same_hold(hold, m.hold)
        if events:
            self.same_resource(events[-1].resource, m)
        self.model[rid] = m
        return hold

    @staticmethod
    def same_hold(hold: Hold | None, m: MHold | None) -> None:
        if m is None:
            assert hold is None
            return
        assert hold is not None
        assert (hold.kind, hold.key, hold.holder) == (m.kind, m.key, m.holder)
        assert (hold.expires, hold.duration) == (m.expires, m.duration)

    def same_resource(self, res: Resource, m: MRes) -> None:
        assert res.present == m.present
        assert res.absent_since == m.absent_since
        assert res.gone == m.gone
        assert (res.enabled, res.disabled_reason) == (m.enabled, m.reason)
        assert res.health == m.health
        self.same_hold(res.hold, m.hold)

    # ---------------------------------------------------------------- rules

    @rule(
        target=keys,
        rid=RID,
        holder=st.sampled_from(HOLDERS),
        timeout=SECONDS,
    )
    def reserve(self, rid: str, holder: Holder, timeout: float) -> object:
        def expect() -> tuple[MRes, list[EventType]]:
            if bad(timeout):
                raise Refusal(Code.INVALID_ARGUMENT)
            self.known(rid)
            m, types = self.settled(rid)
            if m.hold is not None:
                if m.hold.kind is HoldKind.RESERVED and m.hold.holder == holder:
                    hold = replace(m.hold, expires=self.now + timeout, duration=timeout)
                    return replace(m, hold=hold), [*types, EventType.RENEWED]
                raise Refusal(Code.HELD)
            self.check_usable(m)
            hold = MHold(HoldKind.RESERVED, NEW, holder, self.now + timeout, timeout)
            return replace(m, hold=hold), [*types, EventType.RESERVED]

        hold = self.run(rid, expect, lambda: self.reg.reserve(rid, timeout, holder))
        return multiple() if hold is None else hold.key

    @rule(
        target=keys,
        rid=RID,
        choice=st.one_of(st.sampled_from([LIVE, LIVE, LIVE, OTHERS, None, "bogus"]), keys),
        holder=st.sampled_from(HOLDERS),
        lease=LEASES,
    )
    def lock(self, rid: str, choice: str | None, holder: Holder, lease: float | None) -> object:
        key = self.resolve(rid, choice)
        before = self.model.get(rid)

        def expect() -> tuple[MRes, list[EventType]]:
            if bad(lease):
                raise Refusal(Code.INVALID_ARGUMENT)
            self.known(rid)
            m, types = self.settled(rid)
            expires = None if lease is None else self.now + lease
            if m.hold is not None:
                if key != m.hold.key:
                    raise self.refuse_key(m, key)
                if m.hold.kind is HoldKind.LOCKED:
                    return m, types
                hold = MHold(HoldKind.LOCKED, m.hold.key, holder, expires, lease)
                return replace(m, hold=hold), [*types, EventType.LOCKED]
            if key is not None:
                raise self.refuse_key(m, key)
            self.check_usable(m)
            return replace(m, hold=MHold(HoldKind.LOCKED, NEW, holder, expires, lease)), [
                *types,
                EventType.LOCKED,
            ]

        hold = self.run(rid, expect, lambda: self.reg.lock(rid, key, holder, lease))
        if hold is None:
            return multiple()
        # No lock without the right key: a key given was the live hold's.
        if key is not None:
            assert before is not None and before.hold is not None
            assert key == before.hold.key == hold.key
        return hold.key

    @rule(
        rid=RID,
        choice=st.one_of(st.sampled_from([LIVE, LIVE, LIVE, OTHERS, None, "bogus"]), keys),
        force=st.booleans(),
    )
    def release(self, rid: str, choice: str | None, force: bool) -> None:
        key = self.resolve(rid, choice)
        before = self.model.get(rid)
        reasons: list[EndReason] = []

        def expect() -> tuple[MRes, list[EventType]]:
            self.known(rid)
            m, types = self.settled(rid)
            if m.hold is None:
                if key is not None and key == m.expired_key:
                    raise Refusal(Code.EXPIRED)
                raise Refusal(Code.NOT_HELD)
            if not force and key != m.hold.key:
                raise self.refuse_key(m, key)
            reasons.append(EndReason.FORCED if key != m.hold.key else EndReason.RELEASED)
            return replace(m, hold=None), [*types, EventType.RELEASED]

        def act() -> tuple[Hold | None, list[Event]]:
            hold, events = self.reg.release(rid, key, force)
            assert events[-1].ended is reasons[0]
            assert events[-1].hold == hold
            return hold, events

        hold = self.run(rid, expect, act)
        if hold is not None:
            # What was released is the hold that was live, and only with its key
            # unless forced.
            assert before is not None and before.hold is not None
            assert hold.key == before.hold.key
            assert force or key == hold.key

    @rule(
        rid=RID,
        choice=st.one_of(st.sampled_from([LIVE, LIVE, LIVE, OTHERS, "bogus"]), keys),
        seconds=LEASES,
    )
    def renew(self, rid: str, choice: str, seconds: float | None) -> None:
        key = self.resolve(rid, choice)
        assert key is not None

        def expect() -> tuple[MRes, list[EventType]]:
            if bad(seconds):
                raise Refusal(Code.INVALID_ARGUMENT)
            self.known(rid)
            m, types = self.settled(rid)
            if m.hold is None or key != m.hold.key:
                raise self.refuse_key(m, key)
            duration = seconds if seconds is not None else m.hold.duration
            if duration is None:
                raise Refusal(Code.NO_LEASE)
            hold = replace(m.hold, expires=self.now + duration, duration=duration)
            return replace(m, hold=hold), [*types, EventType.RENEWED]

        self.run(rid, expect, lambda: self.reg.renew(rid, key, seconds))

    @rule(rid=st.sampled_from(RIDS), times=st.integers(1, 80))
    def renew_often(self, rid: str, times: int) -> None:
        """Churn the deadline index (it is rebuilt after about 70 changes)."""
        for _ in range(times):
            m = self.model[rid]
            if m.hold is None or m.hold.duration is None:
                return
            self.now += 0.01  # a new deadline each time
            self.renew(rid, LIVE, None)

    # Enabling and describing weigh more than disabling and vanishing, so
    # resources are usually holdable and the hold rules get exercised.
    @rule(rid=RID, reason=st.sampled_from([None, None, "", "broken"]))
    def switch(self, rid: str, reason: str | None) -> None:
        """Enable (reason None) or disable with a reason."""

        def expect() -> tuple[MRes, list[EventType]]:
            self.known(rid)
            m, types = self.settled(rid)
            if reason is None:
                if m.enabled:
                    return m, types
                # The reason outlives the disable, until a new one is given.
                return replace(m, enabled=True), [*types, EventType.ENABLED]
            given = reason or m.reason
            if not m.enabled and m.reason == given:
                return m, types
            return replace(m, enabled=False, reason=given), [*types, EventType.DISABLED]

        def act() -> tuple[None, list[Event]]:
            if reason is None:
                return None, self.reg.enable(rid)
            return None, self.reg.disable(rid, reason)

        self.run(rid, expect, act)

    @rule(rid=st.sampled_from(RIDS), seen=st.sampled_from([True, True, False]))
    def presence(self, rid: str, seen: bool) -> None:
        """A source describes the resource (seen) or no longer sees it."""

        def expect() -> tuple[MRes, list[EventType]]:
            m, types = self.settled(rid)
            if m.present == seen:
                return m, types
            if seen:
                back = replace(m, present=True, absent_since=None, gone=False)
                return back, [*types, EventType.UPDATED]
            return replace(m, present=False, absent_since=self.now), [*types, EventType.UPDATED]

        def act() -> tuple[None, list[Event]]:
            if seen:
                return None, self.reg.describe(Description(rid, rid.upper(), Kind.USB))
            return None, self.reg.vanish(rid)

        self.run(rid, expect, act)

    @rule(rid=st.sampled_from(RIDS), health=st.sampled_from([None, None, "offline"]))
    def set_health(self, rid: str, health: str | None) -> None:
        def expect() -> tuple[MRes, list[EventType]]:
            m, types = self.settled(rid)
            if m.health == health:
                return m, types
            return replace(m, health=health), [*types, EventType.UPDATED]

        self.run(rid, expect, lambda: (None, self.reg.set_health(rid, health)))

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 10.0, 20.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def tick(self) -> None:
        expected: dict[str, list[EventType]] = {}
        for rid in sorted(self.model):
            m, types = self.settled(rid)
            self.model[rid] = m
            if types:
                expected[rid] = types
        events = self.reg.tick()
        # Across resources the order is the registry's choice; per resource it is not.
        got: dict[str, list[EventType]] = {}
        for event in events:
            got.setdefault(event.resource.id, []).append(event.type)
        assert got == expected
        for event in events:
            if event.type is EventType.EXPIRED:
                assert event.hold is not None
                assert event.hold.expires is not None
                assert event.hold.expires <= self.now
        # A hold whose deadline passed is gone after tick.
        for rid in RIDS:
            hold = self.reg.get(rid).hold
            assert hold is None or hold.expires is None or hold.expires > self.now

    @rule()
    def restart(self) -> None:
        """Rebuild the registry from what the store would hold: the model."""
        stored = []
        for rid, m in sorted(self.model.items()):
            hold = None
            if m.hold is not None:
                h = m.hold
                hold = Hold(h.kind, h.key, h.holder, 0.0, h.expires, h.duration)
            stored.append(
                Resource(
                    rid,
                    rid.upper(),
                    Kind.USB,
                    enabled=m.enabled,
                    disabled_reason=m.reason,
                    gone=m.gone,
                    absent_since=m.absent_since,
                    hold=hold,
                )
            )
            # Health is the sources' to say again; expired keys are forgotten.
            self.model[rid] = replace(
                m,
                present=False,
                absent_since=m.absent_since if m.gone else self.now,
                health=None,
                expired_key=None,
            )
        self.reg = Registry(lambda: self.now, grace=GRACE, key_source=self.new_key)
        self.reg.restore(stored)

    # ----------------------------------------------------------- invariants

    @invariant()
    def agrees_with_model(self) -> None:
        live: list[str] = []
        for rid in RIDS:
            m, _ = self.settled(rid)
            res = self.reg.get(rid)
            self.same_resource(res, m)
            if res.hold is not None:
                live.append(res.hold.key)
                assert res.hold.key in self.issued
        # At most one hold per resource, and no key opens two.
        assert len(live) == len(set(live))
        assert [r.id for r in self.reg.resources()] == sorted(RIDS)

    @invariant()
    def next_deadline_is_models(self) -> None:
        deadlines = []
        for m in self.model.values():
            if m.hold is not None and m.hold.expires is not None:
                deadlines.append(m.hold.expires)
            if not m.present and not m.gone and m.absent_since is not None:
                deadlines.append(m.absent_since + GRACE)
        assert self.reg.next_deadline() == min(deadlines, default=None)


RegistryMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRegistryRules = RegistryMachine.TestCase

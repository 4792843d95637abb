"""The registry's deadline index: next_deadline and tick stay right under churn."""

from __future__ import annotations

import random

from agent.model import Description, EventType, Holder, Kind
from agent.registry import Registry
from tests.support.clock import FakeClock

HOLDER = Holder("http://jenkins.example:8080/", "job/x/")


def _registry(clock: FakeClock, count: int) -> Registry:
    reg = Registry(clock, grace=30.0)
    for i in range(count):
        reg.describe(Description(f"r{i}", f"r{i}", Kind.STATIC))
    return reg


def _brute_force_deadline(reg: Registry) -> float | None:
    deadlines: list[float] = []
    for res in reg.resources():
        if res.hold is not None and res.hold.expires is not None:
            deadlines.append(res.hold.expires)
        if not res.present and not res.gone and res.absent_since is not None:
            deadlines.append(res.absent_since + 30.0)
    return min(deadlines, default=None)


def test_next_deadline_follows_renewals_and_releases() -> None:
    clock = FakeClock()
    reg = _registry(clock, 3)
    first, _ = reg.reserve("r0", 10, HOLDER)
    reg.reserve("r1", 20, HOLDER)
    assert reg.next_deadline() == clock.now + 10
    reg.renew("r0", first.key, 50)
    assert reg.next_deadline() == clock.now + 20
    reg.vanish("r2")
    assert reg.next_deadline() == clock.now + 20
    reg.release("r0", first.key)
    reg.release("r1", None, force=True)
    assert reg.next_deadline() == clock.now + 30  # only r2's grace period is left
    reg.describe(Description("r2", "r2", Kind.STATIC))
    assert reg.next_deadline() is None


def test_tick_reports_in_deadline_order_and_only_once() -> None:
    clock = FakeClock()
    reg = _registry(clock, 3)
    reg.reserve("r0", 15, HOLDER)
    reg.reserve("r1", 5, HOLDER)
    reg.vanish("r2")
    clock.advance(40)
    events = reg.tick()
    assert [(e.type, e.resource.id) for e in events] == [
        (EventType.EXPIRED, "r1"),
        (EventType.EXPIRED, "r0"),
        (EventType.GONE, "r2"),
    ]
    assert reg.tick() == []
    assert reg.next_deadline() is None


def test_index_matches_a_full_scan_under_random_churn() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    reg = _registry(clock, 20)
    keys: dict[str, str] = {}
    for _ in range(5000):
        rid = f"r{rng.randrange(20)}"
        action = rng.random()
        res = reg.get(rid)
        if action < 0.3 and res.hold is None and res.present:
            hold, _ = reg.reserve(rid, rng.uniform(1, 50), HOLDER)
            keys[rid] = hold.key
        elif action < 0.5 and res.hold is not None:
            reg.release(rid, res.hold.key)
        elif action < 0.6 and res.hold is not None:
            reg.renew(rid, res.hold.key, rng.uniform(1, 50))
        elif action < 0.7:
            reg.vanish(rid)
        elif action < 0.8:
            reg.describe(Description(rid, rid, Kind.STATIC))
        else:
            clock.advance(rng.uniform(0, 5))
            reg.tick()
        assert reg.next_deadline() == _brute_force_deadline(reg)
    # Stale entries are pruned: the index stays proportional to the resources.
    assert len(reg._deadlines._heap) <= 2 * 20 + 64

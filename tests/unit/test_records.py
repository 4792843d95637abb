"""Rows: every field survives the store, and an older agent's database is upgraded."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from agent import records
from agent.model import (
    Action,
    Caller,
    EndReason,
    Event,
    EventType,
    Fault,
    FaultKind,
    Hold,
    Holder,
    HoldKind,
    Kind,
    Phase,
    Resource,
)
from agent.store import Store
from tests.support.holders import BUILD

# The resources table as agents before sessions wrote it.
OLD_SCHEMA = """
CREATE TABLE resources (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, description TEXT NOT NULL,
    metadata TEXT NOT NULL, enabled INTEGER NOT NULL, disabled_reason TEXT NOT NULL,
    gone INTEGER NOT NULL, absent_since REAL, hold_kind TEXT, hold_key TEXT, holder_id TEXT,
    holder_url TEXT, hold_since REAL, hold_expires REAL, hold_duration REAL
);
INSERT INTO resources VALUES ('old', 'Old', 'static', '', '{}', 1, '', 0, NULL,
    'locked', 'k', 'http://j/', 'job/x/1/', 5.0, NULL, NULL);
"""


async def test_phase_fault_and_failures_round_trip(tmp_path: Path) -> None:
    res = Resource(
        "b1",
        "Board",
        Kind.STATIC,
        hold=Hold(HoldKind.LOCKED, "k", BUILD, 1.0),
        phase=Phase.PROVISIONING,
        fault=Fault(FaultKind.QUARANTINED, "3 failed"),
        failures=3,
    )
    async with Store(tmp_path / "state.db", time.time) as store:
        await store.write([Event(EventType.ADDED, res)])
    loaded = Store(tmp_path / "state.db", time.time).load()
    assert loaded == [res]


def test_an_older_database_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    [res] = Store(path, time.time).load()
    assert res.id == "old" and res.hold is not None and res.hold.key == "k"
    assert res.phase is None and res.fault is None and res.failures == 0


# The hold log as agents before the audit trail wrote it: holds only, nobody's caller.
OLD_LOG = """
CREATE TABLE hold_log (
    seq INTEGER PRIMARY KEY, resource_id TEXT NOT NULL, key TEXT NOT NULL, event TEXT NOT NULL,
    holder_id TEXT NOT NULL, holder_url TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL
);
INSERT INTO hold_log (resource_id, key, event, holder_id, holder_url, at, reason) VALUES
    ('old', 'k1', 'reserved', 'http://j/', 'job/x/', 1.0, ''),
    ('old', 'k1', 'locked', 'http://j/', 'job/x/1/', 2.0, ''),
    ('old', 'k1', 'released', 'http://j/', 'job/x/1/', 3.0, 'forced'),
    ('old', 'k2', 'reserved', 'http://j/', 'job/y/', 4.0, ''),
    ('old', 'k2', 'expired', 'http://j/', 'job/y/', 5.0, 'reservation expired'),
    ('old', 'k3', 'locked', '', 'alice', 6.0, ''),
    ('old', 'k3', 'expired', '', 'alice', 7.0, 'lease expired'),
    ('old', 'k4', 'locked', '', 'bob', 8.0, ''),
    ('old', 'k4', 'released', '', 'bob', 9.0, 'released');
"""


async def test_an_older_hold_log_is_named_as_actions(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA + OLD_LOG)
    async with Store(path, time.time) as store:
        actions = await store.actions("old")
        holds = await store.history("old")
    assert [(a.action, a.at, a.caller) for a in actions] == [
        (Action.RELEASE, 9.0, None),
        (Action.LOCK, 8.0, None),
        (Action.LEASE_END, 7.0, None),
        (Action.LOCK, 6.0, None),
        (Action.EXPIRY, 5.0, None),
        (Action.RESERVE, 4.0, None),
        (Action.FORCED_RELEASE, 3.0, None),
        (Action.LOCK, 2.0, None),
        (Action.RESERVE, 1.0, None),
    ]
    assert actions[-1].holder == Holder("http://j/", "job/x/")
    assert [h.end_reason for h in holds] == [
        EndReason.RELEASED,
        EndReason.LEASE_EXPIRED,
        EndReason.RESERVATION_EXPIRED,
        EndReason.FORCED,
    ]


async def test_every_action_keeps_its_caller_and_holds_fold_past_renewals(tmp_path: Path) -> None:
    res = Resource("r", "R", Kind.STATIC)
    hold = Hold(HoldKind.RESERVED, "k", BUILD, 1.0, 61.0, 60.0)
    alice = Caller("10.0.0.5", "ci")
    async with Store(tmp_path / "state.db", time.time) as store:
        await store.write([Event(EventType.ADDED, res)])
        await store.write([Event(EventType.RESERVED, replace(res, hold=hold), hold, caller=alice)])
        for _ in range(5):  # renewals are actions, but not holds
            await store.write(
                [Event(EventType.RENEWED, replace(res, hold=hold), hold, caller=alice)]
            )
        off = replace(res, enabled=False, disabled_reason="cracked", hold=hold)
        await store.write([Event(EventType.DISABLED, off, caller=Caller("127.0.0.1", "ops"))])
        actions = await store.actions("r", limit=3)
        [entry] = await store.history("r", limit=1)
    assert [(a.action, a.caller, a.detail) for a in actions] == [
        (Action.DISABLE, Caller("127.0.0.1", "ops"), "cracked"),
        (Action.RENEW, alice, "for 60 s"),
        (Action.RENEW, alice, "for 60 s"),
    ]
    assert actions[0].holder is None  # a disable is about the resource, not its hold
    assert (entry.kind, entry.holder, entry.reserved_at) == (HoldKind.RESERVED, BUILD, 1.0)


def test_metadata_text_follows_the_mapping_a_resource_holds() -> None:
    first = Resource(id="p", name="P", kind=Kind.ANDROID, metadata={"b": "2", "a": "1"})
    column = records.COLUMNS.index("metadata")
    assert records.resource_row(first)[column] == '{"a": "1", "b": "2"}'
    assert records.resource_row(replace(first, name="Q"))[column] == '{"a": "1", "b": "2"}'
    described_anew = replace(first, metadata={"a": "1", "battery": "80"})
    assert records.resource_row(described_anew)[column] == '{"a": "1", "battery": "80"}'

"""Resource rows: every field survives the store, and an older agent's database is upgraded."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.model import Event, EventType, Fault, FaultKind, Hold, HoldKind, Kind, Phase, Resource
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

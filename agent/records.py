"""How the agent's state becomes SQLite rows and back: the schema, and the mapping.

``resources`` holds each resource's latest snapshot (its hold and session
phase included); ``hold_log`` is the append-only log of every audited change
(agent/actions.py): the holds, renewals, enabling, disabling and quarantine,
each with who asked (address and token name; NULL: the agent itself). Its
name is older than the other changes in it. Rows are built on the event
loop, once, so the writer (agent/store_writer.py) only executes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from agent.actions import action_of, detail_of, holder_of
from agent.model import (
    Action,
    ActionEntry,
    Caller,
    EndReason,
    Event,
    EventType,
    Fault,
    FaultKind,
    HistoryEntry,
    Hold,
    Holder,
    HoldKind,
    Kind,
    Phase,
    Resource,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    metadata TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT NOT NULL,
    gone INTEGER NOT NULL,
    absent_since REAL,
    hold_kind TEXT,
    hold_key TEXT,
    holder_id TEXT,
    holder_url TEXT,
    hold_since REAL,
    hold_expires REAL,
    hold_duration REAL,
    phase TEXT,
    fault_kind TEXT,
    fault_reason TEXT,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hold_log (
    seq INTEGER PRIMARY KEY,
    resource_id TEXT NOT NULL,
    key TEXT NOT NULL,
    event TEXT NOT NULL,
    holder_id TEXT NOT NULL,
    holder_url TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT NOT NULL,
    action TEXT,
    detail TEXT NOT NULL DEFAULT '',
    address TEXT,
    token TEXT
);
CREATE INDEX IF NOT EXISTS hold_log_by_resource ON hold_log (resource_id, seq);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

COLUMNS = (
    "id",
    "name",
    "kind",
    "description",
    "metadata",
    "enabled",
    "disabled_reason",
    "gone",
    "absent_since",
    "hold_kind",
    "hold_key",
    "holder_id",
    "holder_url",
    "hold_since",
    "hold_expires",
    "hold_duration",
    "phase",
    "fault_kind",
    "fault_reason",
    "failures",
)
# Columns later versions added, for a database an older agent wrote.
ADDED_COLUMNS = {
    "resources": {
        "phase": "TEXT",
        "fault_kind": "TEXT",
        "fault_reason": "TEXT",
        "failures": "INTEGER NOT NULL DEFAULT 0",
    },
    "hold_log": {
        "action": "TEXT",
        "detail": "TEXT NOT NULL DEFAULT ''",
        "address": "TEXT",
        "token": "TEXT",
    },
}
# An older agent logged holds only, without actions: name them as this one would.
# Who asked was not recorded then; address and token stay NULL.
NAME_OLD_ACTIONS = """
UPDATE hold_log SET action = CASE event
    WHEN :reserved THEN :reserve
    WHEN :locked THEN :lock
    WHEN :released THEN CASE reason WHEN :forced THEN :forced_release ELSE :release END
    ELSE CASE reason WHEN :reservation_expired THEN :expiry ELSE :lease_end END
END WHERE action IS NULL
"""
OLD_ACTION_NAMES = {
    "reserved": EventType.RESERVED.value,
    "locked": EventType.LOCKED.value,
    "released": EventType.RELEASED.value,
    "forced": EndReason.FORCED.value,
    "reservation_expired": EndReason.RESERVATION_EXPIRED.value,
    "reserve": Action.RESERVE.value,
    "lock": Action.LOCK.value,
    "release": Action.RELEASE.value,
    "forced_release": Action.FORCED_RELEASE.value,
    "expiry": Action.EXPIRY.value,
    "lease_end": Action.LEASE_END.value,
}
UPSERT_RESOURCE = (
    f"INSERT INTO resources ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in COLUMNS[1:])
)

DELETE_RESOURCE = "DELETE FROM resources WHERE id=?"

# The agent's own facts beside the resources: the clock's anchor, the writer's probe.
SET_META = "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)"

INSERT_LOG = (
    "INSERT INTO hold_log (resource_id, key, event, holder_id, holder_url, at, reason,"
    " action, detail, address, token) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)

# The lines of the log that begin, turn into or end a hold (``fold_history``).
HOLD_EVENTS = tuple(
    e.value for e in (EventType.RESERVED, EventType.LOCKED, EventType.RELEASED, EventType.EXPIRED)
)


def migrate(conn: sqlite3.Connection) -> None:
    """Create the tables, and add (and fill in) what an older agent's database lacks."""
    conn.executescript(SCHEMA)
    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    conn.execute(NAME_OLD_ACTIONS, OLD_ACTION_NAMES)


class Rows(NamedTuple):
    """A write, ready for the writer (a tuple: it crosses to the writer's process as
    one): snapshots by id, log lines, ids to delete."""

    resources: dict[str, tuple[Any, ...]]
    log: list[tuple[Any, ...]]
    removed: frozenset[str] = frozenset()


# Metadata as JSON, by the mapping it was made from. A resource keeps its mapping from
# one change to the next (the registry makes a new one only when a source describes
# it anew), so most rows reuse the text; an entry holds its mapping, so no other
# mapping can take its id while it is kept.
_METADATA_JSON: dict[int, tuple[Mapping[str, str], str]] = {}
METADATA_KEPT = 4096


def _metadata_json(metadata: Mapping[str, str]) -> str:
    kept = _METADATA_JSON.get(id(metadata))
    if kept is not None and kept[0] is metadata:
        return kept[1]
    if len(_METADATA_JSON) >= METADATA_KEPT:
        _METADATA_JSON.clear()
    text = json.dumps(dict(metadata), sort_keys=True)
    _METADATA_JSON[id(metadata)] = (metadata, text)
    return text


def resource_row(res: Resource) -> tuple[Any, ...]:
    """A resource as its row in ``resources`` (in COLUMNS order)."""
    h = res.hold
    return (
        res.id,
        res.name,
        res.kind.value,
        res.description,
        _metadata_json(res.metadata),
        int(res.enabled),
        res.disabled_reason,
        int(res.gone),
        res.absent_since,
        h.kind.value if h else None,
        h.key if h else None,
        h.holder.id if h else None,
        h.holder.url if h else None,
        h.since if h else None,
        h.expires if h else None,
        h.duration if h else None,
        res.phase.value if res.phase else None,
        res.fault.kind.value if res.fault else None,
        res.fault.reason if res.fault else None,
        res.failures,
    )


def row_resource(row: sqlite3.Row) -> Resource:
    """A row of ``resources`` as the resource it stores."""
    hold = None
    if row["hold_kind"] is not None:
        hold = Hold(
            kind=HoldKind(row["hold_kind"]),
            key=row["hold_key"],
            holder=Holder(row["holder_id"], row["holder_url"]),
            since=row["hold_since"],
            expires=row["hold_expires"],
            duration=row["hold_duration"],
        )
    return Resource(
        id=row["id"],
        name=row["name"],
        kind=Kind(row["kind"]),
        description=row["description"],
        metadata=json.loads(row["metadata"]),
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
        gone=bool(row["gone"]),
        absent_since=row["absent_since"],
        hold=hold,
        phase=Phase(row["phase"]) if row["phase"] else None,
        fault=Fault(FaultKind(row["fault_kind"]), row["fault_reason"] or "")
        if row["fault_kind"]
        else None,
        failures=row["failures"],
    )


def rows(events: Sequence[Event], now: float) -> Rows:
    """What committing ``events`` writes: each resource's last snapshot, and log lines."""
    resources: dict[str, tuple[Any, ...]] = {}
    lines: list[tuple[Any, ...]] = []
    removed: set[str] = set()
    for event in events:
        rid = event.resource.id
        action = action_of(event)
        if action is not None:
            lines.append(_log_row(event, action, now))
        if event.type is EventType.REMOVED:
            resources.pop(rid, None)
            removed.add(rid)
            continue
        removed.discard(rid)
        resources[rid] = resource_row(event.resource)  # the last snapshot wins
    return Rows(resources, lines, frozenset(removed))


def _log_row(event: Event, action: Action, now: float) -> tuple[Any, ...]:
    hold = event.hold
    if event.type is EventType.EXPIRED and hold is not None and hold.expires is not None:
        at = hold.expires  # when it ran out, not when the agent noticed
    elif event.type in (EventType.RESERVED, EventType.LOCKED) and hold is not None:
        at = hold.since
    else:
        at = now
    holder = holder_of(event)
    caller = event.caller
    return (
        event.resource.id,
        hold.key if hold is not None else "",
        event.type.value,
        holder.id if holder is not None else "",
        holder.url if holder is not None else "",
        at,
        event.ended.value if event.ended is not None else "",
        action.value,
        detail_of(event, action),
        caller.address if caller is not None else None,
        caller.token if caller is not None else None,
    )


def row_action(row: sqlite3.Row) -> ActionEntry:
    """A line of ``hold_log`` as the change it records."""
    holder = Holder(row["holder_id"], row["holder_url"])
    return ActionEntry(
        action=Action(row["action"]),
        at=row["at"],
        holder=holder if holder.id or holder.url else None,
        caller=Caller(row["address"], row["token"]) if row["address"] is not None else None,
        detail=row["detail"],
    )


def fold_history(rows: list[sqlite3.Row], limit: int) -> list[HistoryEntry]:
    """Log lines (oldest first) into one entry per hold, newest first."""
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_key.setdefault(
            row["key"],
            dict.fromkeys(("holder", "reserved_at", "locked_at", "ended_at", "end_reason")),
        )
        entry.setdefault("kind", HoldKind.RESERVED)
        event = EventType(row["event"])
        if event is EventType.RESERVED:
            entry["reserved_at"] = row["at"]
        elif event is EventType.LOCKED:
            entry["kind"] = HoldKind.LOCKED
            entry["locked_at"] = row["at"]
        else:
            entry["ended_at"] = row["at"]
            entry["end_reason"] = EndReason(row["reason"])
        if event in (EventType.RESERVED, EventType.LOCKED) or entry["holder"] is None:
            entry["holder"] = Holder(row["holder_id"], row["holder_url"])
    entries = [HistoryEntry(**e) for e in by_key.values()]
    return entries[::-1][:limit]


def read_history(conn: sqlite3.Connection, rid: str, n: int) -> list[HistoryEntry]:
    """The latest ``n`` holds of resource ``rid``, newest first."""
    # A hold has at most three such lines (reserved, locked, ended).
    marks = ",".join("?" * len(HOLD_EVENTS))
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM hold_log WHERE resource_id=?"
        f" AND event IN ({marks}) ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        (rid, *HOLD_EVENTS, n * 3 + 2),
    ).fetchall()
    return fold_history(rows, n)


def read_actions(conn: sqlite3.Connection, rid: str, n: int) -> list[ActionEntry]:
    """The latest ``n`` changes to resource ``rid``, newest first."""
    rows = conn.execute(
        "SELECT * FROM hold_log WHERE resource_id=? ORDER BY seq DESC LIMIT ?", (rid, n)
    ).fetchall()
    return [row_action(row) for row in rows]

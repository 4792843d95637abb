"""The agent's vocabulary: every word the other modules share, and nothing that acts.

Resources, holds, holders, events, refusals; the closed sets of values as
enums; the limits on ids and durations; how times are written. Everything
here is an immutable value: the registry replaces values instead of mutating
them, so an event can carry a snapshot without copying. Every other module
imports its words from here (``from agent.model import ...``); this package
imports nothing else of the agent.
"""

from __future__ import annotations

from agent.model.changes import (
    HOLD_ENDING,
    Action,
    ActionEntry,
    Caller,
    EndReason,
    Event,
    EventType,
    HistoryEntry,
    Role,
    Rung,
    RungOutcome,
    RungResult,
)
from agent.model.codes import (
    Code,
    Refused,
)
from agent.model.resources import (
    ID_PATTERN,
    LOCKED_PREFIX,
    MAX_SECONDS,
    METADATA_NAME,
    AdbState,
    Description,
    Fault,
    FaultKind,
    Hold,
    Holder,
    HoldKind,
    Kind,
    Phase,
    Resource,
    ResourceState,
    check_metadata_name,
    locked_environment,
    metadata_value,
    metadata_values,
)
from agent.model.times import (
    isotime,
    maybe_isotime,
    zoned,
)

__all__ = [
    "HOLD_ENDING",
    "ID_PATTERN",
    "LOCKED_PREFIX",
    "MAX_SECONDS",
    "METADATA_NAME",
    "Action",
    "ActionEntry",
    "AdbState",
    "Caller",
    "Code",
    "Description",
    "EndReason",
    "Event",
    "EventType",
    "Fault",
    "FaultKind",
    "HistoryEntry",
    "Hold",
    "HoldKind",
    "Holder",
    "Kind",
    "Phase",
    "Refused",
    "Resource",
    "ResourceState",
    "Role",
    "Rung",
    "RungOutcome",
    "RungResult",
    "check_metadata_name",
    "isotime",
    "locked_environment",
    "maybe_isotime",
    "metadata_value",
    "metadata_values",
    "zoned",
]

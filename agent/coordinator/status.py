"""How one coordinator's sync is doing, as a typed value the API and systemd render."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.coordinator.jenkins import Failure


class SyncState(enum.StrEnum):
    """Where one coordinator's sync is."""

    STARTING = "starting"
    RECONCILING = "reconciling"  # reading what Jenkins has
    SYNCING = "syncing"
    IN_SYNC = "in sync"
    RETRYING = "retrying"  # a transient failure, retried with backoff
    FAILING = "failing"  # a configuration problem, retried slowly


WAITING = frozenset({SyncState.RETRYING, SyncState.FAILING})  # a retry is due
HEALTHY = frozenset({SyncState.IN_SYNC, SyncState.SYNCING})


@dataclass(frozen=True, slots=True)
class SyncError:
    """The last thing that went wrong."""

    at: float
    kind: Failure
    message: str


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """One coordinator's sync at one moment (times are epoch seconds)."""

    url: str
    node: str
    tree: str
    state: SyncState
    pending: int  # resources with changes Jenkins has not taken yet
    last_success: float | None
    last_error: SyncError | None
    next_retry: float | None
    consecutive_failures: int
    requests: int
    results: Mapping[str, int] = field(default_factory=dict)  # requests by result: ok, a Failure
    pending_since: float | None = None  # when the oldest change Jenkins lacks was made

    @property
    def healthy(self) -> bool:
        """In sync, or sending changes without trouble."""
        return self.state in HEALTHY

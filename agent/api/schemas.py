"""What the REST API answers, as pydantic models: the one statement of every answer's shape.

Handlers build these and dump them; ``openapi.py`` takes its component schemas
from them, so the document cannot drift from the answers. Every model is
closed (``additionalProperties: false``) and every field is always present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.coordinator.jenkins import Failure
from agent.coordinator.status import SyncError, SyncState, SyncStatus
from agent.model import (
    Action,
    ActionEntry,
    Caller,
    Code,
    EndReason,
    FaultKind,
    HistoryEntry,
    Hold,
    Holder,
    HoldKind,
    Kind,
    Resource,
    ResourceState,
    isotime,
    maybe_isotime,
)
from agent.sessions.journal import Record, Status

IsoTime = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, description="ISO 8601 with UTC offset")
]
CODE_TABLE = "; ".join(f"{int(c)} {c.name}" for c in Code)
# The registry's times are on the agent's steady clock; answers show the wall
# clock's (Authority.wall, agent/clock.py).
Wall = Callable[[float], float]


def _shown(wall: Wall, at: float | None) -> str | None:
    return None if at is None else isotime(wall(at))


class Out(BaseModel):
    """An answer: closed, and built from trusted values."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HolderOut(Out):
    """Who holds a resource."""

    id: str = Field(description="The system: a Jenkins root URL, or the agent's identity.")
    url: str = Field(description="Who in it: a task or build URL, or user@host.")

    @classmethod
    def of(cls, holder: Holder) -> HolderOut:
        """The holder as the API shows it."""
        return cls.model_construct(id=holder.id, url=holder.url)


class HoldOut(Out):
    """A hold as everyone sees it: never the key."""

    kind: HoldKind
    holder: HolderOut
    since: IsoTime
    expires: IsoTime | None = Field(
        description="Reservation deadline or lease end; null for a lock without lease."
    )

    @classmethod
    def of(cls, hold: Hold, wall: Wall) -> HoldOut:
        """The hold without its key."""
        return cls.model_construct(
            kind=hold.kind,
            holder=HolderOut.of(hold.holder),
            since=isotime(wall(hold.since)),
            expires=_shown(wall, hold.expires),
        )


class HoldWithKey(HoldOut):
    """A hold as its taker sees it, with the key."""

    key: str = Field(description="The capability to lock or release.")

    @classmethod
    def of(cls, hold: Hold, wall: Wall) -> HoldWithKey:
        """The hold with its key: only ever for whoever took it."""
        return cls.model_construct(**dict(HoldOut.of(hold, wall)), key=hold.key)


class FaultOut(Out):
    """A problem the agent found that only an administrator clears (``enable``)."""

    kind: FaultKind
    reason: str


class ResourceOut(Out):
    """A resource as the API lists it."""

    id: str
    name: str
    kind: Kind
    description: str
    state: ResourceState = Field(description="The hold, else why it cannot be held, else free.")
    enabled: bool
    disabled_reason: str
    present: bool = Field(description="Seen by its source right now.")
    gone: bool = Field(description="Absent for the whole grace period.")
    health: str | None = Field(description="What its source says is wrong with it; null: nothing.")
    problem: str | None = Field(
        description="Why it cannot be used: its health, else its fault (quarantined, teardown "
        "failed: until an administrator enables it); null when usable."
    )
    fault: FaultOut | None = Field(
        description="Quarantined, or its teardown failed: unusable until an administrator "
        "enables it again."
    )
    holder: HoldOut | None
    metadata: dict[str, str]

    @classmethod
    def of(cls, res: Resource, wall: Wall) -> ResourceOut:
        """The resource as the API shows it."""
        return cls.model_construct(
            id=res.id,
            name=res.name,
            kind=res.kind,
            description=res.description,
            state=res.state,
            enabled=res.enabled,
            disabled_reason=res.disabled_reason,
            present=res.present,
            gone=res.gone,
            health=res.health,
            problem=res.problem,
            fault=None
            if res.fault is None
            else FaultOut.model_construct(kind=res.fault.kind, reason=res.fault.reason),
            holder=HoldOut.of(res.hold, wall) if res.hold is not None else None,
            metadata=dict(res.metadata),
        )


class ResourceList(Out):
    """Every resource, sorted by id."""

    resources: list[ResourceOut]


class HoldAnswer(Out):
    """A hold taken or renewed: the resource now, and the hold with its key."""

    resource: ResourceOut
    hold: HoldWithKey
    session: str | None = Field(
        description="The session preparing the resource for this lock (its log is at "
        "/api/sessions/{session}/log), or null."
    )


class ReleaseAnswer(Out):
    """A hold ended: the resource now, and the hold that ended."""

    resource: ResourceOut
    released: HoldOut


class HistoryEntryOut(Out):
    """One past or current hold."""

    kind: HoldKind
    holder: HolderOut
    reserved_at: IsoTime | None
    locked_at: IsoTime | None
    ended_at: IsoTime | None = Field(description="Null while the hold lasts.")
    end_reason: EndReason | None

    @classmethod
    def of(cls, entry: HistoryEntry, wall: Wall) -> HistoryEntryOut:
        """One history entry as the API shows it."""
        return cls.model_construct(
            kind=entry.kind,
            holder=HolderOut.of(entry.holder),
            reserved_at=_shown(wall, entry.reserved_at),
            locked_at=_shown(wall, entry.locked_at),
            ended_at=_shown(wall, entry.ended_at),
            end_reason=entry.end_reason,
        )


class CallerOut(Out):
    """Who asked for a change through the API."""

    address: str = Field(description="The caller's IP address.")
    token: str | None = Field(description="The name of the token it used (never the token).")

    @classmethod
    def of(cls, caller: Caller) -> CallerOut:
        """The caller as the API shows it."""
        return cls.model_construct(address=caller.address, token=caller.token)


class ActionOut(Out):
    """One change to a resource: the audit trail's line, kept."""

    action: Action
    at: IsoTime
    holder: HolderOut | None = Field(description="Whose hold it was about, if any.")
    caller: CallerOut | None = Field(
        description="Who asked; null for what the agent did by itself (expiry, lease end, "
        "quarantine, its own releases) and for changes older than the audit trail."
    )
    detail: str = Field(description="The disable reason, why the agent released, a length...")

    @classmethod
    def of(cls, entry: ActionEntry, wall: Wall) -> ActionOut:
        """One action as the API shows it."""
        return cls.model_construct(
            action=entry.action,
            at=isotime(wall(entry.at)),
            holder=HolderOut.of(entry.holder) if entry.holder is not None else None,
            caller=CallerOut.of(entry.caller) if entry.caller is not None else None,
            detail=entry.detail,
        )


class History(Out):
    """A resource's holds, and every change to it; newest first."""

    history: list[HistoryEntryOut] = Field(description="One entry per hold.")
    actions: list[ActionOut] = Field(
        description="One entry per change: reserve, lock, renew, release, forced release, "
        "expiry, lease end, enable, disable, quarantine."
    )


class Health(Out):
    """Liveness, a summary, and what needs a person's attention."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded (still HTTP 200) when a coordinator is failing, the adb server "
        "does not answer while [adb] is enabled, or a resource is quarantined."
    )
    resources: int = Field(ge=0)
    held: int = Field(ge=0)
    problems: list[str] = Field(description="One line per problem; empty when ok.")


class SyncErrorOut(Out):
    """The last thing that went wrong with a coordinator."""

    at: IsoTime
    kind: Failure
    message: str = Field(description="What to fix, if anything.")

    @classmethod
    def of(cls, err: SyncError) -> SyncErrorOut:
        """The error as the API shows it."""
        return cls.model_construct(at=isotime(err.at), kind=err.kind, message=err.message)


class CoordinatorOut(Out):
    """One Jenkins controller the agent keeps informed, and how that goes."""

    url: str = Field(description="The Jenkins root URL.")
    node: str = Field(description="The Jenkins node the resources are on.")
    tree: str = Field(description="The metadata tree holding them.")
    state: SyncState = Field(
        description="starting and reconciling: reading Jenkins' state; syncing: sending "
        "changes; retrying: a transient failure, backing off; failing: a configuration "
        "problem (credentials, permission, node), retried slowly."
    )
    pending: int = Field(ge=0, description="Resources with changes Jenkins has not taken yet.")
    last_success: IsoTime | None = Field(description="Last round that went through.")
    last_error: SyncErrorOut | None
    next_retry: IsoTime | None
    consecutive_failures: int = Field(ge=0)
    requests: int = Field(ge=0, description="Requests sent so far.")

    @classmethod
    def of(cls, status: SyncStatus) -> CoordinatorOut:
        """A sync's status as the API shows it."""
        return cls.model_construct(
            url=status.url,
            node=status.node,
            tree=status.tree,
            state=status.state,
            pending=status.pending,
            last_success=maybe_isotime(status.last_success),
            last_error=SyncErrorOut.of(status.last_error) if status.last_error else None,
            next_retry=maybe_isotime(status.next_retry),
            consecutive_failures=status.consecutive_failures,
            requests=status.requests,
        )


class Coordinators(Out):
    """Every configured coordinator; empty when none is."""

    coordinators: list[CoordinatorOut]


class RecoverAnswer(Out):
    """A recovery ladder climbed by hand: the resource now, and whether it is back."""

    resource: ResourceOut
    recovered: bool = Field(
        description="The phone is back (adb device and a working shell); false: it was "
        "not tried (the message in the agent's log says why) or it ended quarantined."
    )


class SessionOut(Out):
    """One session: a resource prepared for one lock and cleaned after it."""

    id: str
    resource: str
    holder: HolderOut
    status: Status = Field(
        description="provisioning, then ready or failed; after the release cleaning, then "
        "clean or dirty (teardown failed)."
    )
    started: IsoTime
    updated: IsoTime
    failed_step: str | None = Field(description="The step that failed, if one did.")
    message: str | None = Field(description="What went wrong, if anything.")

    @classmethod
    def of(cls, rec: Record) -> SessionOut:
        """A session record as the API shows it."""
        return cls.model_construct(
            id=rec.id,
            resource=rec.resource_id,
            holder=HolderOut.of(rec.holder),
            status=rec.status,
            started=isotime(rec.started),
            updated=isotime(rec.updated),
            failed_step=rec.failed_step,
            message=rec.message,
        )


class SessionList(Out):
    """Sessions, newest first."""

    sessions: list[SessionOut]


class ErrorDetail(Out):
    """What went wrong."""

    code: int = Field(
        json_schema_extra={"enum": [int(c) for c in Code if c is not Code.OK]},
        description=f"Stable refusal code: {CODE_TABLE}.",
    )
    message: str = Field(description="What is wrong, for people.")


class Error(Out):
    """Every /api/ error."""

    error: ErrorDetail


ANSWERS: tuple[type[BaseModel], ...] = (
    ResourceList,
    ResourceOut,
    HoldAnswer,
    ReleaseAnswer,
    History,
    Health,
    Coordinators,
    RecoverAnswer,
    SessionList,
    SessionOut,
    Error,
)

"""Changes: the events the registry makes, how holds end, who asked, and how people see them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.model.resources import Hold, Holder, HoldKind, Resource


class EventType(enum.StrEnum):
    """Every kind of change the registry makes."""

    ADDED = "added"
    UPDATED = "updated"  # description, metadata, presence or health changed
    GONE = "gone"  # absent for the whole grace period
    RESERVED = "reserved"
    LOCKED = "locked"
    RENEWED = "renewed"  # same hold, new deadline
    RELEASED = "released"
    EXPIRED = "expired"  # a reservation or lease ran out
    ENABLED = "enabled"
    DISABLED = "disabled"
    PROVISIONED = "provisioned"  # the session's provisioning ended (the resource says how)
    CLEANED = "cleaned"  # the session's teardown ended (the resource says how)
    QUARANTINED = "quarantined"  # the agent gave up on it until an administrator steps in
    RECOVERY = "recovery"  # a rung of the recovery ladder was tried (nothing else changed)
    REMOVED = "removed"  # retired from the config, or forgotten by an administrator


HOLD_ENDING = frozenset({EventType.RELEASED, EventType.EXPIRED})


class EndReason(enum.StrEnum):
    """How a hold ended."""

    RELEASED = "released"  # by its holder, with the key
    FORCED = "forced"  # by someone else, without the key
    RESERVATION_EXPIRED = "reservation expired"
    LEASE_EXPIRED = "lease expired"
    PROVISIONING_FAILED = "provisioning failed"  # released by the agent: Lock answered NO
    BUILD_ENDED = "build ended"  # released by the agent: the holder's build is over


class Role(enum.StrEnum):
    """What a bearer token may do: ``user`` holds resources, ``admin`` also overrides."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked for a change through the API: the peer's address and the token's name.

    ``token`` is the name the token has in ``[server] token_files`` (never the
    token itself), or None when the call carried none.
    """

    address: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One change: the resource as it is after it, and the hold involved.

    For RELEASED and EXPIRED, ``hold`` is the hold that ended and ``ended``
    says how. ``caller`` is who asked for it through the API; None for what
    the agent did by itself (time, a session, the reaper) or a source saw.
    """

    type: EventType
    resource: Resource
    hold: Hold | None = None
    ended: EndReason | None = None
    caller: Caller | None = None
    rung: RungResult | None = None  # RECOVERY: which rung, and how it went


class Action(enum.StrEnum):
    """What the audit trail and the history call each change people care about."""

    RESERVE = "reserve"
    LOCK = "lock"
    RENEW = "renew"
    RELEASE = "release"
    FORCED_RELEASE = "forced release"
    EXPIRY = "expiry"  # a reservation ran out
    LEASE_END = "lease end"  # a lock's lease ran out
    ENABLE = "enable"
    DISABLE = "disable"
    QUARANTINE = "quarantine"
    FORGET = "forget"
    RECOVER = "recover"  # one rung of the recovery ladder


@dataclass(frozen=True, slots=True)
class ActionEntry:
    """One change in a resource's history: what, when, for whom, asked by whom.

    ``caller`` is None for the agent's own changes (and for changes an agent
    older than the audit trail recorded); ``detail`` says more where there is
    more to say (a disable's reason, why the agent released).
    """

    action: Action
    at: float
    holder: Holder | None
    caller: Caller | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One hold in a resource's past (or present, while ``ended_at`` is None)."""

    kind: HoldKind
    holder: Holder
    reserved_at: float | None
    locked_at: float | None
    ended_at: float | None
    end_reason: EndReason | None


class Rung(enum.StrEnum):
    """A step of the recovery ladder, gentle to forceful (docs/recovery.md)."""

    RECONNECT = "reconnect"  # adb drops and makes its connection to the phone again
    REPLUG = "soft replug"  # the kernel unbinds and rebinds the USB device
    POWER_CYCLE = "power cycle"  # the hub switches the port's power off and on
    QUARANTINE = "quarantine"  # give up until an administrator steps in


class RungOutcome(enum.StrEnum):
    """How a rung went."""

    RECOVERED = "recovered"  # the phone is back: adb "device" and a working shell
    FAILED = "failed"  # tried; the phone is still stuck
    SKIPPED = "skipped"  # not possible here (no USB device, a held neighbour, no switch)


@dataclass(frozen=True, slots=True)
class RungResult:
    """One rung of a recovery ladder, tried: how it went and what it did."""

    rung: Rung
    outcome: RungOutcome
    detail: str

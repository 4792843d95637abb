"""The agent's vocabulary: resources, holds, holders, events and refusals.

Everything here is an immutable value. The registry replaces values instead of
mutating them, so an event can carry a snapshot without copying.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class HoldKind(enum.StrEnum):
    """What a hold is: a short reservation or a lock."""

    RESERVED = "reserved"
    LOCKED = "locked"


class Kind(enum.StrEnum):
    """Where a resource comes from and what it is."""

    ANDROID = "android"
    USB = "usb"
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a resource: JSON-RPC's clientInfo.

    ``id`` names the system (a Jenkins root URL, or the agent's own identity for
    local holds) and ``url`` who in it (a job, a build, a person). Both are kept
    exactly as received: Jenkins compares ``id`` character for character.
    """

    id: str
    url: str = ""


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation or lock on one resource.

    ``key`` is the capability that locks or releases it. ``expires`` is the
    reservation deadline, or a lock's lease deadline (None: no lease).
    ``duration`` is the length that ``expires`` was set from, reused by renew.
    """

    kind: HoldKind
    key: str
    holder: Holder
    since: float
    expires: float | None = None
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """One device or static resource, as the registry knows it.

    ``present`` is what the sources see now; ``gone`` is set once a resource
    has been absent for the whole grace period. ``health`` is None when the
    resource is usable, else why not. ``enabled`` is the administrator's switch.
    """

    id: str
    name: str
    kind: Kind
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    present: bool = True
    absent_since: float | None = None
    gone: bool = False
    enabled: bool = True
    disabled_reason: str = ""
    health: str | None = None
    hold: Hold | None = None

    @property
    def available(self) -> bool:
        """What coordinators are told: enabled, not gone and healthy."""
        return self.enabled and not self.gone and self.health is None

    @property
    def state(self) -> str:
        """One word for people and scripts: the hold, else why it can't be held."""
        if self.hold is not None:
            return self.hold.kind.value
        if not self.enabled:
            return "disabled"
        if not self.present:
            return "absent"
        if self.health is not None:
            return "unhealthy"
        return "free"


@dataclass(frozen=True, slots=True)
class Description:
    """What a source says a resource is (everything but presence and holds)."""

    id: str
    name: str
    kind: Kind
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


class Code(enum.IntEnum):
    """Stable refusal codes, shared by JSON-RPC, REST and the CLI (docs/api.md)."""

    OK = 0
    UNKNOWN_RESOURCE = 1
    DISABLED = 2
    ABSENT = 3
    UNHEALTHY = 4
    HELD = 5
    WRONG_KEY = 6
    EXPIRED = 7
    NOT_HELD = 8
    INVALID_ARGUMENT = 9
    NO_LEASE = 10
    # Wire-level problems (REST and CLI only; JSON-RPC has its own error codes).
    MALFORMED_REQUEST = 20
    TOO_LARGE = 21
    NOT_FOUND = 22
    INTERNAL = 23


class Refused(Exception):
    """A command the rules say no to; carries a stable code and a clear message."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


HOLD_ENDING = frozenset({EventType.RELEASED, EventType.EXPIRED})


@dataclass(frozen=True, slots=True)
class Event:
    """One change: the resource as it is after it, and the hold involved.

    For RELEASED and EXPIRED, ``hold`` is the hold that ended and ``reason``
    says how (released, forced, reservation expired, lease expired).
    """

    type: EventType
    resource: Resource
    hold: Hold | None = None
    reason: str = ""

"""The agent's vocabulary: every word the other modules share, and nothing that acts.

Resources, holds, holders, events, refusals; the closed sets of values as
enums; the limits on ids and durations; how times are written. Everything
here is an immutable value: the registry replaces values instead of mutating
them, so an event can carry a snapshot without copying. Every other module
imports its words from here; this module imports nothing of the agent.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# Resource ids travel in URLs, Jenkins metadata names and environment names.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"
# Metadata names become parts of dotted Jenkins paths and env variable names.
METADATA_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# A reservation or lease longer than a week is a mistake, not a plan.
MAX_SECONDS = 7 * 24 * 3600.0


def check_metadata_name(name: str) -> None:
    """ValueError unless ``name`` is fit for Jenkins paths and environment names."""
    if not METADATA_NAME.match(name):
        raise ValueError(
            f"metadata name {name!r} must be lower-case letters, digits, '.', '_' or '-'"
        )


def metadata_value(value: object) -> object:
    """A metadata value as Jenkins matches it: TOML's numbers and booleans become strings.

    ``api = 34`` and ``rooted = true`` in a config mean "34" and "true" to a
    job that selects on them; anything else is left for the validator to refuse.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def metadata_values(values: object) -> object:
    """``metadata_value`` on every value of a table (a pydantic "before" validator's job)."""
    if isinstance(values, dict):
        return {name: metadata_value(v) for name, v in values.items()}
    return values


class HoldKind(enum.StrEnum):
    """What a hold is: a short reservation or a lock."""

    RESERVED = "reserved"
    LOCKED = "locked"


class ResourceState(enum.StrEnum):
    """What a resource is doing, in one word (``Resource.state``)."""

    FREE = "free"
    RESERVED = "reserved"
    LOCKED = "locked"
    PROVISIONING = "provisioning"  # locked, and being prepared for its holder
    CLEANING = "cleaning"  # released, and being cleaned before anyone else gets it
    DISABLED = "disabled"
    QUARANTINED = "quarantined"
    ABSENT = "absent"
    UNHEALTHY = "unhealthy"


class Phase(enum.StrEnum):
    """Where a resource's session is: preparing it for a lock, or cleaning it after one."""

    PROVISIONING = "provisioning"
    CLEANING = "cleaning"


class FaultKind(enum.StrEnum):
    """Why a resource waits for an administrator (``enable`` clears it)."""

    QUARANTINED = "quarantined"  # provisioning failed too often in a row
    TEARDOWN_FAILED = "teardown failed"  # not known to be clean


@dataclass(frozen=True, slots=True)
class Fault:
    """A problem the agent found with a resource that only a person can clear."""

    kind: FaultKind
    reason: str


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
    phase: Phase | None = None
    fault: Fault | None = None
    failures: int = 0  # provisionings failed in a row

    @property
    def available(self) -> bool:
        """What coordinators are told: enabled, not gone, healthy and without fault."""
        return self.enabled and not self.gone and self.health is None and self.fault is None

    @property
    def problem(self) -> str | None:
        """Why a present resource is unusable: its health, else its fault, else None."""
        if self.health is not None:
            return self.health
        return None if self.fault is None else f"{self.fault.kind.value}: {self.fault.reason}"

    @property
    def state(self) -> ResourceState:
        """One word for people and scripts: the hold, else why it can't be held."""
        if self.hold is not None:
            if self.phase is Phase.PROVISIONING:
                return ResourceState.PROVISIONING
            return ResourceState(self.hold.kind.value)
        if self.phase is Phase.CLEANING:
            return ResourceState.CLEANING
        if not self.enabled:
            return ResourceState.DISABLED
        if self.fault is not None and self.fault.kind is FaultKind.QUARANTINED:
            return ResourceState.QUARANTINED
        if not self.present:
            return ResourceState.ABSENT
        if self.problem is not None:
            return ResourceState.UNHEALTHY
        return ResourceState.FREE


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
    CLEANING = 11  # released moments ago and still being cleaned
    QUARANTINED = 12
    PROVISIONING_FAILED = 13  # locked, then released: preparing it failed
    PRESENT = 14  # forget refused: the resource is connected
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
    PROVISIONED = "provisioned"  # the session's provisioning ended (the resource says how)
    CLEANED = "cleaned"  # the session's teardown ended (the resource says how)
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


@dataclass(frozen=True, slots=True)
class Event:
    """One change: the resource as it is after it, and the hold involved.

    For RELEASED and EXPIRED, ``hold`` is the hold that ended and ``ended``
    says how.
    """

    type: EventType
    resource: Resource
    hold: Hold | None = None
    ended: EndReason | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One hold in a resource's past (or present, while ``ended_at`` is None)."""

    kind: HoldKind
    holder: Holder
    reserved_at: float | None
    locked_at: float | None
    ended_at: float | None
    end_reason: EndReason | None


class AdbState(enum.StrEnum):
    """A device's state as the adb server lists it (adb's own words)."""

    DEVICE = "device"
    OFFLINE = "offline"
    UNAUTHORIZED = "unauthorized"
    AUTHORIZING = "authorizing"
    CONNECTING = "connecting"
    NO_PERMISSIONS = "no permissions"
    BOOTLOADER = "bootloader"
    RECOVERY = "recovery"
    RESCUE = "rescue"
    SIDELOAD = "sideload"
    HOST = "host"
    DETACHED = "detached"
    UNKNOWN = "unknown"  # also what a word this agent does not know becomes


# ------------------------------------------------------------ environment

LOCKED_PREFIX = "MD_EXTERNAL_RESOURCES_LOCKED_"
_NON_WORD = re.compile(r"\W")


def locked_environment(resource_id: str, metadata: Mapping[str, str]) -> dict[str, str]:
    """A locked resource's environment, named exactly as the Jenkins plugin names it.

    ``MD_EXTERNAL_RESOURCES_LOCKED_ID`` is the id; each metadata value follows
    under its dotted path in capitals, non-word characters made ``_``
    (``android.release`` -> ``..._ANDROID_RELEASE``).
    """
    env = {LOCKED_PREFIX + _NON_WORD.sub("_", name.upper()): v for name, v in metadata.items()}
    env[LOCKED_PREFIX + "ID"] = resource_id
    return env


# ------------------------------------------------------------------ times


def local_offset(epoch: float) -> int:
    """The machine's UTC offset at that instant, in seconds."""
    offset = datetime.fromtimestamp(epoch).astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def isotime(epoch: float) -> str:
    """ISO 8601 with the local offset, to the second: 2026-11-24T10:15:30+01:00."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def maybe_isotime(epoch: float | None) -> str | None:
    """``isotime``, or None for no time."""
    return None if epoch is None else isotime(epoch)

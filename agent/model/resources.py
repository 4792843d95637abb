"""Resources and holds: what the agent keeps, who holds it, and the limits on both."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

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

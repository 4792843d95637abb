"""Why the registry says no: each refusal's code and the words that explain it.

Pure functions that raise ``Refused``; the registry decides when, these say how.
"""

from __future__ import annotations

import math
from typing import NoReturn

from agent.model import MAX_SECONDS, Code, FaultKind, Hold, Phase, Refused, Resource


def check_seconds(name: str, value: float) -> None:
    """Refuse a duration that is not a number of seconds in (0, MAX_SECONDS]."""
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise Refused(
            Code.INVALID_ARGUMENT,
            f"{name} must be a number of seconds above 0 and at most {MAX_SECONDS:.0f}, "
            f"got {value!r}",
        )


def who(hold: Hold) -> str:
    """``locked by job/x/12/``: the hold and its holder, for a message."""
    holder = hold.holder.url or hold.holder.id
    return f"{hold.kind.value} by {holder}" if holder else hold.kind.value


def unknown(resource_id: str) -> Refused:
    """No resource has this id."""
    return Refused(Code.UNKNOWN_RESOURCE, f"no resource with id {resource_id!r}")


def held(resource_id: str, hold: Hold) -> Refused:
    """Someone else holds it."""
    return Refused(Code.HELD, f"resource {resource_id} is {who(hold)}")


def not_reserved(resource_id: str) -> Refused:
    """Jenkins' Lock came without the key of a reservation."""
    return Refused(
        Code.WRONG_KEY,
        f"resource {resource_id} is not reserved: Lock needs the key of a reservation",
    )


def not_held(resource_id: str) -> Refused:
    """A release of a resource nobody holds."""
    return Refused(Code.NOT_HELD, f"resource {resource_id} is not reserved or locked")


def no_lease(resource_id: str) -> Refused:
    """A renewal of a lock that has no lease, without a new length."""
    return Refused(
        Code.NO_LEASE, f"the lock on {resource_id} has no lease to renew; give a lease length"
    )


def present(resource_id: str) -> Refused:
    """Forgetting a resource that is connected."""
    return Refused(
        Code.PRESENT,
        f"resource {resource_id} is connected: only an absent resource can be forgotten "
        "(unplug it, or remove it from the config)",
    )


def cleaning(resource_id: str) -> Refused:
    """A resource still being cleaned after its last lock."""
    return Refused(
        Code.CLEANING,
        f"resource {resource_id} is being cleaned after its last lock; try again soon",
    )


def check_usable(res: Resource) -> None:
    """Refuse a new hold on a resource being cleaned, disabled, faulty, absent or unhealthy."""
    if res.phase is Phase.CLEANING:
        raise cleaning(res.id)
    if not res.enabled:
        why = f": {res.disabled_reason}" if res.disabled_reason else ""
        raise Refused(Code.DISABLED, f"resource {res.id} is disabled{why}")
    if res.fault is not None:
        code = Code.QUARANTINED if res.fault.kind is FaultKind.QUARANTINED else Code.UNHEALTHY
        raise Refused(
            code,
            f"resource {res.id} is {res.fault.kind.value}: {res.fault.reason} "
            "(an administrator enables it again)",
        )
    if not res.present:
        raise Refused(Code.ABSENT, f"resource {res.id} is not connected")
    if res.health is not None:
        raise Refused(Code.UNHEALTHY, f"resource {res.id} is not usable: {res.health}")


def refuse_key(
    resource_id: str, key: str | None, hold: Hold | None, expired_key: str | None
) -> NoReturn:
    """Refuse a command whose ``key`` does not open ``hold`` (the current one, or None)."""
    # Checked before the current hold: whoever took the resource since, the
    # caller's problem is that its own hold ran out.
    if key is not None and expired_key == key:
        raise Refused(Code.EXPIRED, f"the hold on {resource_id} with this key has expired")
    if hold is None:
        raise Refused(Code.WRONG_KEY, f"resource {resource_id} has no hold with this key")
    if key is None:
        raise held(resource_id, hold)
    raise Refused(Code.WRONG_KEY, f"wrong key for resource {resource_id}: {who(hold)}")

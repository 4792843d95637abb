"""Who asked for each change, and what the audit trail calls it.

The API knows who calls (the peer's address, the token's name); the registry
knows what changed. ``CALLER`` carries the first to where the second is
committed: the API sets it for the request it serves, and the authority reads
it when it commits a command's events, stamping them -- so the store's history
and every sink see the same caller, and no command signature has to pass it
along (a lock through the sessions' gate or the waitlist included).

What a deadline does (an expiry, a grace period ending) is nobody's request,
even when a command is what applied it: those events are never stamped.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import replace

from agent.model import (
    Action,
    Caller,
    EndReason,
    Event,
    EventType,
    FaultKind,
    Holder,
)

CALLER: ContextVar[Caller | None] = ContextVar("caller", default=None)

_TIMED = frozenset({EventType.EXPIRED, EventType.GONE})
# The agent's own releases: no caller asked for them, the detail says why.
_AGENT_ENDINGS = frozenset({EndReason.PROVISIONING_FAILED, EndReason.BUILD_ENDED})


def stamped(events: Iterable[Event], caller: Caller | None) -> list[Event]:
    """``events`` with ``caller`` on each one that a request caused."""
    if caller is None:
        return list(events)
    return [e if e.type in _TIMED else replace(e, caller=caller) for e in events]


def action_of(event: Event) -> Action | None:
    """The audited action an event is, or None (a device came, went or changed)."""
    match event.type:
        case EventType.RESERVED:
            return Action.RESERVE
        case EventType.LOCKED:
            return Action.LOCK
        case EventType.RENEWED:
            return Action.RENEW
        case EventType.RELEASED:
            return Action.FORCED_RELEASE if event.ended is EndReason.FORCED else Action.RELEASE
        case EventType.EXPIRED:
            if event.ended is EndReason.RESERVATION_EXPIRED:
                return Action.EXPIRY
            return Action.LEASE_END
        case EventType.ENABLED:
            return Action.ENABLE
        case EventType.DISABLED:
            return Action.DISABLE
        case EventType.QUARANTINED:
            return Action.QUARANTINE
        case EventType.RECOVERY:
            return Action.RECOVER
        case EventType.REMOVED:
            # Someone's forget; a retirement from the config is the agent's own tidying.
            return Action.FORGET if event.caller is not None else None
        case EventType.PROVISIONED:
            # A quarantined resource takes no lock until enabled: its last
            # provisioning is the one that quarantined it.
            fault = event.resource.fault
            if fault is not None and fault.kind is FaultKind.QUARANTINED:
                return Action.QUARANTINE
    return None


def holder_of(event: Event) -> Holder | None:
    """Whose hold the action was about (a quarantine: the lock whose provisioning failed)."""
    hold = event.hold
    if hold is None and event.type is EventType.PROVISIONED:
        hold = event.resource.hold
    return hold.holder if hold is not None else None


def detail_of(event: Event, action: Action) -> str:
    """What more there is to say about an action (empty when nothing)."""
    hold = event.hold
    if action is Action.DISABLE:
        return event.resource.disabled_reason
    if action is Action.RECOVER and event.rung is not None:
        rung = event.rung
        return f"{rung.rung.value}: {rung.outcome.value}: {rung.detail}"
    if action is Action.QUARANTINE and event.resource.fault is not None:
        return event.resource.fault.reason
    if action is Action.RELEASE and event.ended in _AGENT_ENDINGS:
        assert event.ended is not None
        return f"by the agent: {event.ended.value}"
    if action in (Action.RESERVE, Action.RENEW, Action.LOCK) and hold is not None:
        return "no lease" if hold.duration is None else f"for {hold.duration:g} s"
    return ""

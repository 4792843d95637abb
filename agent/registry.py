"""The rules: who may hold what, and what every change means. No I/O.

The registry is plain synchronous Python with an injected clock and key source.
Every method that changes something returns the events it caused; callers make
them durable and tell the sinks. Deadlines (reservation and lease expiry, the
presence grace period) are enforced both by ``tick`` -- which the daemon calls
on a timer at ``next_deadline`` -- and lazily before every command, so a late
timer can never let an expired hold win.
"""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Concatenate, ParamSpec, TypeVar

from agent import refusals
from agent.ledger import Ledger, no_sessions
from agent.model import (
    EndReason,
    Event,
    EventType,
    Fault,
    FaultKind,
    Hold,
    Holder,
    HoldKind,
    Phase,
    Refused,
    Resource,
    RungResult,
)

P = ParamSpec("P")
R = TypeVar("R")


KEY_BYTES = 18  # 144 bits, written as 24 URL-safe characters (as secrets.token_urlsafe(18))
KEYS_PER_READ = 256


class KeySource:
    """Unguessable keys, cut from the kernel's random bytes read 256 keys at a time.

    One getrandom() per key cost more than the rest of a reservation's rule.
    """

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0

    def __call__(self) -> str:
        """A new key."""
        if self._at >= len(self._bytes):
            self._bytes = os.urandom(KEY_BYTES * KEYS_PER_READ)
            self._at = 0
        chunk = self._bytes[self._at : self._at + KEY_BYTES]
        self._at += KEY_BYTES
        return base64.urlsafe_b64encode(chunk).decode("ascii")


def _refusal_changes_nothing(
    command: Callable[Concatenate[Registry, str, P], R],
) -> Callable[Concatenate[Registry, str, P], R]:
    """Undo the deadlines a command applied on its way to a refusal.

    A refused command has no events to return, so the expiry it applied lazily
    would reach neither the store nor the sinks; left undone, the next ``tick``
    applies and reports it.
    """

    @functools.wraps(command)
    def run(self: Registry, resource_id: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        res = self._resources.get(resource_id)
        expired_key = self._expired_keys.get(resource_id)
        try:
            return command(self, resource_id, *args, **kwargs)
        except Refused:
            if res is not None:
                self._resources[resource_id] = res
                # The heap may have been rebuilt without the undone deadline.
                self._index(None, res)
            if expired_key is None:
                self._expired_keys.pop(resource_id, None)
            else:
                self._expired_keys[resource_id] = expired_key
            raise

    return run


class Registry(Ledger):
    """Resources and their holds, and every rule about them.

    A refused command changes nothing; reading changes nothing.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        grace: float = 30.0,
        key_source: Callable[[], str] | None = None,
        needs_session: Callable[[Resource], bool] = no_sessions,
    ) -> None:
        super().__init__(clock, grace, needs_session)
        self._new_key = key_source if key_source is not None else KeySource()

    # ---------------------------------------------------------------- commands

    @_refusal_changes_nothing
    def reserve(self, resource_id: str, timeout: float, holder: Holder) -> tuple[Hold, list[Event]]:
        """Reserve a free resource for ``timeout`` seconds; answer the new hold.

        The same holder reserving its own live reservation again keeps the key
        and gets a new deadline.
        """
        refusals.check_seconds("timeout", timeout)
        events = self._settle(resource_id)
        res = self._require(resource_id)
        now = self._clock()
        if res.hold is not None:
            if res.hold.kind is HoldKind.RESERVED and res.hold.holder == holder:
                hold = replace(res.hold, expires=now + timeout, duration=timeout)
                events.append(self._put(replace(res, hold=hold), EventType.RENEWED, hold))
                return hold, events
            raise refusals.held(resource_id, res.hold)
        refusals.check_usable(res)
        hold = Hold(HoldKind.RESERVED, self._new_key(), holder, now, now + timeout, timeout)
        events.append(self._put(replace(res, hold=hold), EventType.RESERVED, hold))
        return hold, events

    @_refusal_changes_nothing
    def lock(
        self,
        resource_id: str,
        key: str | None,
        holder: Holder,
        lease: float | None = None,
        *,
        reserved_first: bool = False,
    ) -> tuple[Hold, list[Event]]:
        """Turn the reservation held with ``key`` into a lock.

        Without a key, lock a free resource directly (a person or a script) --
        unless ``reserved_first``: Jenkins' Lock turns a reservation into a
        lock and is no short cut around Reserve. Locking one's own lock again
        is answered with the same hold.
        """
        if lease is not None:
            refusals.check_seconds("lease", lease)
        events = self._settle(resource_id)
        res = self._require(resource_id)
        now = self._clock()
        expires = None if lease is None else now + lease
        if res.hold is not None:
            if key is None or key != res.hold.key:
                self._refuse_key(resource_id, key, res.hold)
            if res.hold.kind is HoldKind.LOCKED:
                return res.hold, events
            # The key is the capability: Jenkins reserves as the queued task and
            # locks as the build, so the holder is updated rather than compared.
            hold = Hold(HoldKind.LOCKED, res.hold.key, holder, now, expires, lease)
            events.append(self._put(self._locked(res, hold), EventType.LOCKED, hold))
            return hold, events
        if key is not None:
            self._refuse_key(resource_id, key, None)
        if reserved_first:
            raise refusals.not_reserved(resource_id)
        refusals.check_usable(res)
        hold = Hold(HoldKind.LOCKED, self._new_key(), holder, now, expires, lease)
        events.append(self._put(self._locked(res, hold), EventType.LOCKED, hold))
        return hold, events

    def _locked(self, res: Resource, hold: Hold) -> Resource:
        """``res`` locked with ``hold``: provisioned first if a session says so."""
        phase = Phase.PROVISIONING if self._needs_session(res) else None
        return replace(res, hold=hold, phase=phase)

    @_refusal_changes_nothing
    def release(
        self,
        resource_id: str,
        key: str | None,
        force: bool = False,
        ended: EndReason | None = None,
    ) -> tuple[Hold, list[Event]]:
        """Drop the hold held with ``key`` (any hold with ``force``); answer it.

        ``ended`` says why when the agent itself releases (default: released,
        or forced when the key was not the hold's).
        """
        events = self._settle(resource_id)
        res = self._require(resource_id)
        if res.hold is None:
            if key is not None and self._expired_keys.get(resource_id) == key:
                self._refuse_key(resource_id, key, None)
            raise refusals.not_held(resource_id)
        if not force and key != res.hold.key:
            self._refuse_key(resource_id, key, res.hold)
        hold = res.hold
        if ended is None:
            ended = EndReason.FORCED if force and key != hold.key else EndReason.RELEASED
        events.append(self._put(self._ended(res), EventType.RELEASED, hold, ended))
        return hold, events + self._retired(resource_id)

    @_refusal_changes_nothing
    def renew(
        self, resource_id: str, key: str, seconds: float | None = None
    ) -> tuple[Hold, list[Event]]:
        """Push the deadline of the hold held with ``key`` ``seconds`` from now.

        Without ``seconds`` the hold's own duration is used again; a lock
        without a lease gets one only when ``seconds`` is given.
        """
        if seconds is not None:
            refusals.check_seconds("lease", seconds)
        events = self._settle(resource_id)
        res = self._require(resource_id)
        if res.hold is None or key != res.hold.key:
            self._refuse_key(resource_id, key, res.hold)
        duration = seconds if seconds is not None else res.hold.duration
        if duration is None:
            raise refusals.no_lease(resource_id)
        hold = replace(res.hold, expires=self._clock() + duration, duration=duration)
        events.append(self._put(replace(res, hold=hold), EventType.RENEWED, hold))
        return hold, events

    def enable(self, resource_id: str) -> list[Event]:
        """Let the resource take new holds again; an administrator's word clears a fault.

        The last disable's reason is kept, for whoever wonders why it was off.
        """
        events = self._settle(resource_id)
        res = self._require(resource_id)
        new = replace(res, enabled=True, fault=None, failures=0)
        if new != res:
            events.append(self._put(new, EventType.ENABLED))
        return events

    # ---------------------------------------------------------------- sessions

    def provisioned(
        self, resource_id: str, key: str, failure: str | None, quarantine_after: int
    ) -> list[Event]:
        """Provisioning for the lock held with ``key`` ended: well (None), or with ``failure``.

        After ``quarantine_after`` failures in a row the resource is quarantined.
        Nothing changes if that lock is gone meanwhile.
        """
        events = self._settle(resource_id)
        res = self._resources.get(resource_id)
        if res is None or res.hold is None or res.hold.key != key:
            return events
        if res.phase is not Phase.PROVISIONING:
            return events
        if failure is None:
            new = replace(res, phase=None, failures=0)
        else:
            failures = res.failures + 1
            fault = res.fault
            if failures >= quarantine_after:
                fault = Fault(FaultKind.QUARANTINED, f"{failures} provisionings failed in a row; "
                              f"the last: {failure}")  # fmt: skip
            new = replace(res, phase=None, failures=failures, fault=fault)
        events.append(self._put(new, EventType.PROVISIONED))
        return events

    def quarantine(self, resource_id: str, reason: str) -> list[Event]:
        """The agent gives up on the resource until an administrator enables it again."""
        events = self._settle(resource_id)
        res = self._resources.get(resource_id)
        fault = Fault(FaultKind.QUARANTINED, reason)
        if res is None or res.fault == fault:
            return events
        events.append(self._put(replace(res, fault=fault), EventType.QUARANTINED))
        return events

    def recovery(self, resource_id: str, result: RungResult) -> list[Event]:
        """A rung of the recovery ladder was tried: an event for the record, no change."""
        events = self._settle(resource_id)
        res = self._resources.get(resource_id)
        if res is not None:
            events.append(Event(EventType.RECOVERY, res, rung=result))
        return events

    def cleaned(self, resource_id: str, failure: str | None) -> list[Event]:
        """Teardown ended: the resource is free again, or faulty with ``failure``."""
        events = self._settle(resource_id)
        res = self._resources.get(resource_id)
        if res is None or res.phase is not Phase.CLEANING:
            return events
        fault = res.fault if failure is None else Fault(FaultKind.TEARDOWN_FAILED, failure)
        events.append(self._put(replace(res, phase=None, fault=fault), EventType.CLEANED))
        return events + self._retired(resource_id)

    def forget(self, resource_id: str) -> list[Event]:
        """Drop an absent resource nobody holds (an administrator's word: it is not coming back)."""
        events = self._settle(resource_id)
        res = self._require(resource_id)
        if res.present:
            raise refusals.present(resource_id)
        if res.hold is not None:
            raise refusals.held(resource_id, res.hold)
        if res.phase is Phase.CLEANING:
            raise refusals.cleaning(resource_id)
        events.append(self._remove(res))
        return events

    def disable(self, resource_id: str, reason: str = "") -> list[Event]:
        """Refuse new holds on the resource; an existing hold stays.

        Without a ``reason`` the last one given stays: a reason lasts until a new one.
        """
        events = self._settle(resource_id)
        res = self._require(resource_id)
        reason = reason or res.disabled_reason
        if res.enabled or res.disabled_reason != reason:
            events.append(
                self._put(replace(res, enabled=False, disabled_reason=reason), EventType.DISABLED)
            )
        return events

"""The rules: who may hold what, and what every change means. No I/O.

The registry is plain synchronous Python with an injected clock and key source.
Every method that changes something returns the events it caused; callers make
them durable and tell the sinks. Deadlines (reservation and lease expiry, the
presence grace period) are enforced both by ``tick`` -- which the daemon calls
on a timer at ``next_deadline`` -- and lazily before every command, so a late
timer can never let an expired hold win.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Concatenate, NoReturn, ParamSpec, TypeVar

from agent import refusals
from agent.deadlines import Deadlines
from agent.model import (
    Description,
    EndReason,
    Event,
    EventType,
    Hold,
    Holder,
    HoldKind,
    Refused,
    Resource,
)

P = ParamSpec("P")
R = TypeVar("R")


def new_key() -> str:
    """An unguessable reservation key."""
    return secrets.token_urlsafe(18)


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


class Registry:
    """Resources and their holds, and every rule about them.

    A refused command changes nothing; reading changes nothing.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        grace: float = 30.0,
        key_source: Callable[[], str] = new_key,
    ) -> None:
        self._clock = clock
        self._grace = grace
        self._new_key = key_source
        self._resources: dict[str, Resource] = {}
        # The last key that expired on each resource, so a late lock or release
        # with it is told "expired" rather than "wrong key".
        self._expired_keys: dict[str, str] = {}
        self._deadlines = Deadlines(self._deadline_of, self._all_deadlines, self.__len__)

    # ----------------------------------------------------------------- reading

    def get(self, resource_id: str) -> Resource:
        """The resource with this id as it is now, due deadlines shown applied.

        Reading changes nothing: the events of those deadlines are the next
        ``tick``'s, so none is lost on the way to the store and the sinks.
        """
        return self._due(self._require(resource_id))[0]

    def resources(self) -> list[Resource]:
        """Every resource as it is now (like ``get``), sorted by id."""
        return [self._due(self._resources[k])[0] for k in sorted(self._resources)]

    def __len__(self) -> int:
        return len(self._resources)

    def restore(self, resources: Iterable[Resource]) -> None:
        """Load resources from the store, before any source has spoken.

        Nothing is known to be present yet: each restored device starts its
        grace period now, and the sources confirm the ones that are there.
        Past deadlines are applied by the next ``tick``.
        """
        now = self._clock()
        for stored in resources:
            absent_since = stored.absent_since if stored.gone else now
            res = replace(stored, present=False, absent_since=absent_since)
            self._resources[res.id] = res
            self._index(None, res)

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
            events.append(self._put(replace(res, hold=hold), EventType.LOCKED, hold))
            return hold, events
        if key is not None:
            self._refuse_key(resource_id, key, None)
        if reserved_first:
            raise refusals.not_reserved(resource_id)
        refusals.check_usable(res)
        hold = Hold(HoldKind.LOCKED, self._new_key(), holder, now, expires, lease)
        events.append(self._put(replace(res, hold=hold), EventType.LOCKED, hold))
        return hold, events

    @_refusal_changes_nothing
    def release(
        self, resource_id: str, key: str | None, force: bool = False
    ) -> tuple[Hold, list[Event]]:
        """Drop the hold held with ``key`` (any hold with ``force``); answer it."""
        events = self._settle(resource_id)
        res = self._require(resource_id)
        if res.hold is None:
            if key is not None and self._expired_keys.get(resource_id) == key:
                self._refuse_key(resource_id, key, None)
            raise refusals.not_held(resource_id)
        if not force and key != res.hold.key:
            self._refuse_key(resource_id, key, res.hold)
        hold = res.hold
        ended = EndReason.FORCED if force and key != hold.key else EndReason.RELEASED
        events.append(self._put(replace(res, hold=None), EventType.RELEASED, hold, ended))
        return hold, events

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
        """Let the resource take new holds again."""
        events = self._settle(resource_id)
        res = self._require(resource_id)
        if not res.enabled:
            events.append(
                self._put(replace(res, enabled=True, disabled_reason=""), EventType.ENABLED)
            )
        return events

    def disable(self, resource_id: str, reason: str = "") -> list[Event]:
        """Refuse new holds on the resource; an existing hold stays."""
        events = self._settle(resource_id)
        res = self._require(resource_id)
        if res.enabled or res.disabled_reason != reason:
            events.append(
                self._put(replace(res, enabled=False, disabled_reason=reason), EventType.DISABLED)
            )
        return events

    # ------------------------------------------------------ facts from sources

    def describe(self, desc: Description) -> list[Event]:
        """A source sees this resource now, described so: add or update it."""
        # Deadlines that passed before this fact are applied first, so a device
        # that was away past its grace period is reported GONE, then back.
        events = self._settle(desc.id)
        old = self._resources.get(desc.id)
        if old is None:
            res = Resource(
                id=desc.id,
                name=desc.name,
                kind=desc.kind,
                description=desc.description,
                metadata=dict(desc.metadata),
            )
            return [self._put(res, EventType.ADDED)]
        new = replace(
            old,
            name=desc.name,
            kind=desc.kind,
            description=desc.description,
            metadata=dict(desc.metadata),
            present=True,
            absent_since=None,
            gone=False,
        )
        if new != old:
            events.append(self._put(new, EventType.UPDATED))
        return events

    def vanish(self, resource_id: str) -> list[Event]:
        """The resource is no longer seen. Its hold stays; the grace period starts."""
        events = self._settle(resource_id)
        res = self._resources.get(resource_id)
        if res is None or not res.present:
            return events
        new = replace(res, present=False, absent_since=self._clock())
        events.append(self._put(new, EventType.UPDATED))
        return events

    def set_health(self, resource_id: str, reason: str | None) -> list[Event]:
        """Present but unusable (``reason``), or usable again (None)."""
        events = self._settle(resource_id)
        res = self._resources.get(resource_id)
        if res is None or res.health == reason:
            return events
        events.append(self._put(replace(res, health=reason), EventType.UPDATED))
        return events

    # -------------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do, or None."""
        return self._deadlines.next()

    def tick(self) -> list[Event]:
        """Expire what is due: reservations, leases, and grace periods."""
        events: list[Event] = []
        for rid in list(self._deadlines.due(self._clock())):
            events.extend(self._settle(rid))
        return events

    # ---------------------------------------------------------------- internal

    def _index(self, old: Resource | None, new: Resource) -> None:
        """Keep the deadlines current; call after storing ``new``."""
        self._deadlines.note(
            new.id, None if old is None else self._deadline(old), self._deadline(new)
        )

    def _deadline_of(self, rid: str) -> float | None:
        res = self._resources.get(rid)
        return None if res is None else self._deadline(res)

    def _all_deadlines(self) -> Iterable[tuple[float, str]]:
        for res in self._resources.values():
            deadline = self._deadline(res)
            if deadline is not None:
                yield deadline, res.id

    def _deadline(self, res: Resource) -> float | None:
        candidates = []
        if res.hold is not None and res.hold.expires is not None:
            candidates.append(res.hold.expires)
        if not res.present and not res.gone and res.absent_since is not None:
            candidates.append(res.absent_since + self._grace)
        return min(candidates, default=None)

    def _due(self, res: Resource) -> tuple[Resource, list[Event]]:
        """The resource once the deadlines passed by now apply, and their events."""
        now = self._clock()
        events: list[Event] = []
        hold = res.hold
        if hold is not None and hold.expires is not None and hold.expires <= now:
            ended = (
                EndReason.RESERVATION_EXPIRED
                if hold.kind is HoldKind.RESERVED
                else EndReason.LEASE_EXPIRED
            )
            res = replace(res, hold=None)
            events.append(Event(EventType.EXPIRED, res, hold, ended))
        if (
            not res.present
            and not res.gone
            and res.absent_since is not None
            and res.absent_since + self._grace <= now
        ):
            res = replace(res, gone=True)
            events.append(Event(EventType.GONE, res))
        return res, events

    def _settle(self, resource_id: str) -> list[Event]:
        res = self._resources.get(resource_id)
        if res is None:
            return []
        old = res
        res, events = self._due(res)
        if events:
            self._resources[resource_id] = res
            self._index(old, res)
        for event in events:
            if event.type is EventType.EXPIRED and event.hold is not None:
                self._expired_keys[resource_id] = event.hold.key
        return events

    def _require(self, resource_id: str) -> Resource:
        res = self._resources.get(resource_id)
        if res is None:
            raise refusals.unknown(resource_id)
        return res

    def _refuse_key(self, resource_id: str, key: str | None, hold: Hold | None) -> NoReturn:
        refusals.refuse_key(resource_id, key, hold, self._expired_keys.get(resource_id))

    def _put(
        self,
        res: Resource,
        type_: EventType,
        hold: Hold | None = None,
        ended: EndReason | None = None,
    ) -> Event:
        old = self._resources.get(res.id)
        self._resources[res.id] = res
        self._index(old, res)
        return Event(type_, res, hold, ended)

"""The registry's books: every resource, its deadlines, and the facts sources report. No I/O.

``Ledger`` keeps the resources and applies what time and the sources say:
reservations and leases running out, grace periods ending, devices coming,
going and changing health. ``Registry`` (agent/registry.py) adds the commands
people and Jenkins give. Every change is answered as events; a reading
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import NoReturn

from agent import refusals
from agent.deadlines import Deadlines
from agent.model import (
    Description,
    EndReason,
    Event,
    EventType,
    Hold,
    HoldKind,
    Phase,
    Resource,
)

# What commands, time and sessions decide about a resource; the rest is what its
# source says (description, presence, health), which a failed commit does not undo.
DECIDED = ("hold", "enabled", "disabled_reason", "phase", "fault", "failures")


def no_sessions(res: Resource) -> bool:
    """The default: no resource has provisioning or teardown steps."""
    return False


class Ledger:
    """Resources by id, with their deadlines applied on time."""

    def __init__(
        self,
        clock: Callable[[], float],
        grace: float = 30.0,
        needs_session: Callable[[Resource], bool] = no_sessions,
    ) -> None:
        # needs_session(res): whether a lock on ``res`` is provisioned and torn down.
        self._clock = clock
        self._grace = grace
        self._needs_session = needs_session
        self._resources: dict[str, Resource] = {}
        # The last key that expired on each resource, so a late lock or release
        # with it is told "expired" rather than "wrong key".
        self._expired_keys: dict[str, str] = {}
        # Resources their source no longer declares, removed once nobody holds them.
        self._retiring: set[str] = set()
        self._deadlines = Deadlines(self._deadline_of, self._all_deadlines, self.__len__)

    # ----------------------------------------------------------------- reading

    def get(self, resource_id: str) -> Resource:
        """The resource with this id as it is now, due deadlines shown applied.

        Reading changes nothing: the events of those deadlines are the next
        ``tick``'s, so none is lost on the way to the store and the sinks.
        """
        return self._due(self._require(resource_id))[0]

    def find(self, resource_id: str) -> Resource | None:
        """Like ``get``, but None for an unknown id."""
        res = self._resources.get(resource_id)
        return None if res is None else self._due(res)[0]

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

    def roll_back(self, saved: Mapping[str, Resource]) -> list[str]:
        """Undo every decision the disk does not have: ``saved`` is what it has, by id.

        A command whose commit failed is refused, so no one was told of it:
        each resource takes its hold, switches and session phase from
        ``saved`` again (and one only in memory, none), while what its source
        said last stays -- the source would not say it again. Answers the ids
        of the resources that changed.
        """
        changed = []
        for rid in self._resources.keys() | saved.keys():
            now, disk = self._resources.get(rid), saved.get(rid)
            if now is None:
                assert disk is not None
                new = disk  # removed in memory only: back as it was saved
            else:
                base = disk if disk is not None else Resource(now.id, now.name, now.kind)
                new = replace(now, **{name: getattr(base, name) for name in DECIDED})
            if new != now:
                self._resources[rid] = new
                self._index(now, new)
                changed.append(rid)
        return changed

    # ------------------------------------------------------ facts from sources

    def describe(self, desc: Description) -> list[Event]:
        """A source sees this resource now, described so: add or update it."""
        # Deadlines that passed before this fact are applied first, so a device
        # that was away past its grace period is reported GONE, then back.
        events = self._settle(desc.id)
        self._retiring.discard(desc.id)  # declared again
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

    def retire(self, resource_id: str) -> list[Event]:
        """The source that declared the resource no longer does (a ``[[resource]]`` deleted).

        It is removed now, or -- while it is held or being cleaned -- as soon
        as that is over.
        """
        events = self._settle(resource_id)
        if resource_id in self._resources:
            self._retiring.add(resource_id)
            events += self._retired(resource_id)
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
            res = self._ended(res)
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

    def _ended(self, res: Resource) -> Resource:
        """``res`` once its hold is gone: a lock with a session leaves it to be cleaned."""
        assert res.hold is not None
        cleaning = res.hold.kind is HoldKind.LOCKED and self._needs_session(res)
        return replace(res, hold=None, phase=Phase.CLEANING if cleaning else None)

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
        return events + self._retired(resource_id) if events else events

    def _retired(self, resource_id: str) -> list[Event]:
        """Remove a retiring resource once nobody holds it and it is clean."""
        res = self._resources.get(resource_id)
        if res is None or resource_id not in self._retiring:
            return []
        if res.hold is not None or res.phase is not None:
            return []
        return [self._remove(res)]

    def _remove(self, res: Resource) -> Event:
        """Drop ``res`` from the books: the REMOVED event carries its last state."""
        del self._resources[res.id]
        self._expired_keys.pop(res.id, None)
        return Event(EventType.REMOVED, res)

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

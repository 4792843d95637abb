"""The lock authority: registry rules made durable, timed and observable.

Every command runs the registry's rule, commits the resulting events to the
store, and only then answers; committed events go to the event bus in commit
order. Facts from sources (a device came or went) take the same path but
nobody waits for them. One timer, always set to the registry's next deadline,
expires reservations and leases and ends grace periods on time.

A command's events carry the caller the API set (agent/actions.py); the
agent's own releases (``ended`` given) and what sources and time do carry none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from agent.actions import CALLER, stamped
from agent.events import EventBus
from agent.model import (
    ActionEntry,
    Description,
    EndReason,
    Event,
    HistoryEntry,
    Hold,
    Holder,
    Resource,
    RungResult,
)
from agent.registry import Registry
from agent.store import Committed, Store

log = logging.getLogger(__name__)


class Authority:
    """The single place where holds change; the API and sources call it."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float],
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.registry = registry
        self.bus = bus
        self._store = store
        self._clock = clock
        self._on_fatal = on_fatal
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._last_write: asyncio.Future[None] | None = None
        store.on_commit(self._committed)

    # ---------------------------------------------------------------- commands

    async def reserve(self, resource_id: str, timeout: float, holder: Holder) -> Hold:
        """Reserve; answers once the reservation is on disk."""
        hold, events = self.registry.reserve(resource_id, timeout, holder)
        await self._commit(self._asked(events))
        return hold

    async def lock(
        self,
        resource_id: str,
        key: str | None,
        holder: Holder,
        lease: float | None = None,
        *,
        reserved_first: bool = False,
    ) -> Hold:
        """Lock (a reservation, or a free resource without key); durable on return."""
        hold, events = self.registry.lock(
            resource_id, key, holder, lease, reserved_first=reserved_first
        )
        await self._commit(self._asked(events))
        return hold

    async def release(
        self,
        resource_id: str,
        key: str | None,
        force: bool = False,
        ended: EndReason | None = None,
    ) -> Hold:
        """Release; durable on return. Answers the hold that ended."""
        hold, events = self.registry.release(resource_id, key, force, ended)
        await self._commit(events if ended is not None else self._asked(events))
        return hold

    async def renew(self, resource_id: str, key: str, seconds: float | None = None) -> Hold:
        """Push a hold's deadline; durable on return."""
        hold, events = self.registry.renew(resource_id, key, seconds)
        await self._commit(self._asked(events))
        return hold

    async def enable(self, resource_id: str) -> Resource:
        """Enable; durable on return."""
        await self._commit(self._asked(self.registry.enable(resource_id)))
        return self.registry.get(resource_id)

    async def disable(self, resource_id: str, reason: str = "") -> Resource:
        """Disable; durable on return."""
        await self._commit(self._asked(self.registry.disable(resource_id, reason)))
        return self.registry.get(resource_id)

    async def forget(self, resource_id: str) -> Resource:
        """Drop an absent resource; durable on return. Answers it as it was last."""
        res = self.registry.get(resource_id)
        await self._commit(self._asked(self.registry.forget(resource_id)))
        return res

    async def provisioned(
        self, resource_id: str, key: str, failure: str | None, quarantine_after: int
    ) -> None:
        """A session's provisioning ended (see Registry.provisioned); durable on return."""
        await self._commit(self.registry.provisioned(resource_id, key, failure, quarantine_after))

    async def recovery(self, resource_id: str, result: RungResult) -> None:
        """Record a rung of the recovery ladder (history, audit, metrics); durable on return."""
        await self._commit(self.registry.recovery(resource_id, result))

    async def quarantine(self, resource_id: str, reason: str) -> None:
        """Quarantine the resource (see Registry.quarantine); durable on return."""
        await self._commit(self.registry.quarantine(resource_id, reason))

    async def cleaned(self, resource_id: str, failure: str | None) -> None:
        """A session's teardown ended (see Registry.cleaned); durable on return."""
        await self._commit(self.registry.cleaned(resource_id, failure))

    async def history(self, resource_id: str, limit: int) -> list[HistoryEntry]:
        """Past and present holds of a known resource, newest first."""
        self.registry.get(resource_id)  # refuses an unknown id
        return await self._store.history(resource_id, limit)

    async def actions(self, resource_id: str, limit: int) -> list[ActionEntry]:
        """The latest changes to a known resource, newest first."""
        self.registry.get(resource_id)  # refuses an unknown id
        return await self._store.actions(resource_id, limit)

    # ------------------------------------------------------ facts from sources

    def describe(self, desc: Description) -> None:
        """A source sees this resource now."""
        self._record(self.registry.describe(desc))

    def vanish(self, resource_id: str) -> None:
        """A source no longer sees this resource."""
        self._record(self.registry.vanish(resource_id))

    def set_health(self, resource_id: str, reason: str | None) -> None:
        """A source says the resource is unusable (reason) or usable (None)."""
        self._record(self.registry.set_health(resource_id, reason))

    def retire(self, resource_id: str) -> None:
        """A source no longer declares this resource: removed once nobody holds it."""
        self._record(self.registry.retire(resource_id))

    # ---------------------------------------------------------------- plumbing

    async def __aenter__(self) -> Authority:
        """Apply deadlines that passed while the agent was down, and arm the timer."""
        self._record(self.registry.tick())
        self._arm()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Cancel the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @staticmethod
    def _asked(events: Sequence[Event]) -> list[Event]:
        """A command's events, stamped with the caller the API set for this request."""
        return stamped(events, CALLER.get())

    async def _commit(self, events: Sequence[Event]) -> None:
        if events:
            await self._write(events)
        elif self._last_write is not None and not self._last_write.done():
            # Nothing new, but the answer may tell of a change still on its way
            # to disk (a lock asked for twice): it waits, so no answer outruns it.
            await asyncio.shield(self._last_write)

    def _record(self, events: Sequence[Event]) -> None:
        if events:
            future = self._write(events)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _write(self, events: Sequence[Event]) -> asyncio.Future[None]:
        future = self._store.write(events)
        self._last_write = future
        self._arm()
        return future

    def _committed(self, writes: Committed) -> None:
        """A group's writes, before their futures resolve: the bus hears what is on disk.

        Sinks so hear commit order and never of a change that is not on disk, all of a
        group at once; called from the store's own callback, so no request's caller
        reaches what a sink does in turn (the event says who).
        """
        events: list[Event] = []
        for written, exc in writes:
            if exc is None:
                events.extend(written)
                continue
            # Memory is now ahead of disk; only a restart from disk is consistent.
            log.critical("state could not be saved, stopping: %s", exc)
            self._on_fatal(exc)
        if events:
            self.bus.publish(events)

    def _arm(self) -> None:
        deadline = self.registry.next_deadline()
        at = self._timer_at
        if self._timer is not None and at is not None and (deadline is None or at <= deadline):
            # Not too late: a timer that rings early finds nothing due and arms again,
            # cheaper than moving it at nearly every command.
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            # A hair late rather than early: an early wake-up would find nothing due.
            delay = max(0.0, deadline - self._clock()) + 0.001
            self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._record(self.registry.tick())
        self._arm()

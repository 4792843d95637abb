"""The lock authority: registry rules made durable, timed and observable.

Every command runs the registry's rule, commits the resulting events to the
store, and only then answers; committed events go to the event bus in commit
order. Facts from sources (a device came or went) take the same path but
nobody waits for them. One timer, always set to the registry's next deadline,
expires reservations and leases and ends grace periods on time.

A command's events carry the caller the API set (agent/actions.py); the
agent's own releases (``ended`` given) and what sources and time do carry none.

A commit that fails (a full or read-only disk) is not the end of the agent:
the registry is rolled back to what the disk has (``Registry.roll_back``), the
commands waiting on it are refused with NOT_SAVED, naming the state
directory (SAVE_UNCERTAIN if the disk failed after the change may have been
written), and the store tries the next writes afresh. The agent's own
bookkeeping (sessions' outcomes, recovery) is tried again until it is saved;
the timer retries what time decided every ``RETRY`` seconds meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence

from agent.actions import CALLER, stamped
from agent.clock import as_is
from agent.events import EventBus
from agent.model import (
    ActionEntry,
    Code,
    Description,
    EndReason,
    Event,
    EventType,
    HistoryEntry,
    Hold,
    Holder,
    Refused,
    Resource,
    RungResult,
)
from agent.registry import Registry
from agent.store import Committed, Store
from agent.store_errors import CommitFailed

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between tries of what time or the agent itself decided, while writes fail
UNCERTAIN = (
    "the disk failed after the change may have been written, so it may or may not be in "
    "effect after a restart; not in effect now"
)
UNSAVED = (Code.NOT_SAVED, Code.SAVE_UNCERTAIN)  # the disk, not the rules, refused


class Authority:
    """The single place where holds change; the API and sources call it."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float],
        *,
        saved: Iterable[Resource] = (),
        wall: Callable[[float], float] = as_is,
    ) -> None:
        # saved: the resources as the store had them at start (what a rollback returns to);
        # wall(at): the wall clock's time for the clock's ``at`` (what answers show).
        self.registry = registry
        self.bus = bus
        self.wall = wall
        self._store = store
        self._clock = clock
        self._saved = {res.id: res for res in saved}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._last_write: asyncio.Future[None] | None = None
        store.on_commit(self._committed)

    @property
    def disk_problem(self) -> str | None:
        """Why changes cannot be saved now (naming the state directory), or None."""
        return self._store.problem

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

    async def let_go(self, resource_id: str, key: str, ended: EndReason) -> None:
        """The agent's own release of the hold held with ``key``, tried until it is saved.

        Nothing is done if that hold is gone meanwhile.
        """

        def release() -> list[Event]:
            try:
                return self.registry.release(resource_id, key, ended=ended)[1]
            except Refused:
                return []  # released or expired meanwhile

        await self._eventually(release)

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
        await self._eventually(
            lambda: self.registry.provisioned(resource_id, key, failure, quarantine_after)
        )

    async def recovery(self, resource_id: str, result: RungResult) -> None:
        """Record a rung of the recovery ladder (history, audit, metrics); durable on return."""
        await self._eventually(lambda: self.registry.recovery(resource_id, result))

    async def quarantine(self, resource_id: str, reason: str) -> None:
        """Quarantine the resource (see Registry.quarantine); durable on return."""
        await self._eventually(lambda: self.registry.quarantine(resource_id, reason))

    async def cleaned(self, resource_id: str, failure: str | None) -> None:
        """A session's teardown ended (see Registry.cleaned); durable on return."""
        await self._eventually(lambda: self.registry.cleaned(resource_id, failure))

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
        try:
            if events:
                await self._write(events)
            elif self._last_write is not None and not self._last_write.done():
                # Nothing new, but the answer may tell of a change still on its way
                # to disk (a lock asked for twice): it waits, so no answer outruns it.
                await asyncio.shield(self._last_write)
        except CommitFailed as exc:
            # Rolled back already (``_committed`` ran first): nothing of it is left in
            # memory. On disk an uncertain one is lost at the next commit, or kept if
            # the agent dies first: only then is it in effect, so say so.
            if exc.uncertain:
                raise Refused(Code.SAVE_UNCERTAIN, f"{exc}: {UNCERTAIN}") from exc
            raise Refused(Code.NOT_SAVED, f"{exc}: nothing was changed") from exc

    async def _eventually(self, rule: Callable[[], Sequence[Event]]) -> None:
        """Commit what ``rule`` decides, deciding again after each rollback until it is saved."""
        while True:
            try:
                await self._commit(rule())
                return
            except Refused as refusal:
                if refusal.code not in UNSAVED:
                    raise
            await asyncio.sleep(RETRY)

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
                for event in written:
                    if event.type is EventType.REMOVED:
                        self._saved.pop(event.resource.id, None)
                    else:
                        self._saved[event.resource.id] = event.resource
                events.extend(written)
            elif isinstance(exc, CommitFailed) and exc.generation == self._store.generation:
                # Memory is ahead of the disk: back to what the disk has, once per
                # generation (the later failures of this one were rolled back too).
                # What was saved before it is told first, in commit order.
                if events:
                    self.bus.publish(events)
                    events = []
                undone = self.registry.roll_back(self._saved)
                self._store.reset()
                # The store logged why; this is what it undid.
                log.debug("rolled back %d resources to the saved state: %s", len(undone), exc)
                self._arm()
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
            if self._store.problem is not None:
                delay = max(delay, RETRY)  # what is due cannot be saved now: no busy loop
            self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._record(self.registry.tick())
        self._arm()

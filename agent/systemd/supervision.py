"""The agent's side of systemd supervision: readiness, status line, watchdog.

The watchdog ping runs as a task on the event loop itself, so a loop that
hangs stops the pings and systemd restarts the agent. The status line is
recomputed a moment after committed events -- once for all that came
meanwhile: under load, four times a second rather than after every commit
(180 datagrams a second to PID 1, and a walk over every resource each time)
-- and every few seconds for the coordinators' health (which changes
without events).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence

from agent.events import EventBus
from agent.lifecycle import Service
from agent.model import Event, HoldKind, Resource
from agent.systemd.notify import Notifier

REFRESH = 2.0  # seconds between status recomputations for coordinator health
SETTLE = 0.25  # seconds from a committed event to the status line that shows it


def status_line(resources: Iterable[Resource], coordinators: Sequence[bool]) -> str:
    """For example ``12 resources, 3 locked, 2 coordinators ok``.

    ``coordinators`` holds whether each coordinator's sync is healthy.
    """
    total = locked = reserved = unusable = 0
    for res in resources:
        if res.gone:
            continue
        total += 1
        if res.hold is not None:
            if res.hold.kind is HoldKind.LOCKED:
                locked += 1
            else:
                reserved += 1
        elif not res.present or res.health is not None or not res.enabled:
            unusable += 1
    parts = [f"{total} resource{'s' if total != 1 else ''}", f"{locked} locked"]
    if reserved:
        parts.append(f"{reserved} reserved")
    if unusable:
        parts.append(f"{unusable} unavailable")
    parts.append(_coordinators_part(coordinators))
    return ", ".join(parts)


def _coordinators_part(healthy: Sequence[bool]) -> str:
    if not healthy:
        return "no coordinators"
    ok = sum(healthy)
    noun = "coordinator" if len(healthy) == 1 else "coordinators"
    return f"{ok} {noun} ok" if ok == len(healthy) else f"{ok} of {len(healthy)} {noun} ok"


class Supervision(Service):
    """Keeps the service manager informed; does nothing outside systemd."""

    def __init__(
        self,
        notifier: Notifier,
        bus: EventBus,
        resources: Callable[[], Iterable[Resource]],
        coordinators: Callable[[], Sequence[bool]],
    ) -> None:
        # coordinators(): whether each coordinator's sync is healthy.
        self._notifier = notifier
        self._bus = bus
        self._resources = resources
        self._coordinators = coordinators
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._pending = False
        self._ready = False
        self._stopping_sent = False
        self._last_status = ""

    async def start(self) -> None:
        """Begin the watchdog pings and follow the bus for status changes."""
        if self._notifier.enabled:
            loop = asyncio.get_running_loop()
            interval = self._notifier.watchdog_interval
            if interval is not None:
                self._tasks.append(loop.create_task(self._ping(interval)))
            self._tasks.append(loop.create_task(self._refresh()))
            self._unsubscribe = self._bus.subscribe(self._on_event)

    async def stop(self) -> None:
        """End the watchdog pings (the very last thing before exit)."""
        self.stopping()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._notifier.close()

    def ready(self) -> None:
        """State restored and the listener bound: READY=1 with the first status."""
        self._ready = True
        self._last_status = self._status()
        self._notifier.ready(self._last_status)

    def stopping(self) -> None:
        """Shutdown begins: STOPPING=1 (once), and no more status updates."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if not self._stopping_sent:
            self._notifier.stopping()
            self._stopping_sent = True
        self._ready = False

    def _status(self) -> str:
        return status_line(self._resources(), self._coordinators())

    def _on_event(self, event: Event) -> None:
        if self._pending or not self._ready:
            return
        self._pending = True
        asyncio.get_running_loop().call_later(SETTLE, self._update)

    def _update(self) -> None:
        self._pending = False
        if not self._ready:
            return
        status = self._status()
        if status != self._last_status:
            self._last_status = status
            self._notifier.status(status)

    async def _ping(self, interval: float) -> None:
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            self._update()

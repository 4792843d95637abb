"""The line for a free resource: first come, first served, kept by the agent.

``resource-agent run --wait`` asks for any resource whose metadata matches its
selectors; when none is free it waits here. Whenever something changes (a
release, a teardown ending, a phone plugged in), free resources are offered to
the waiters in the order they came, each to the first waiter it suits. The
waiter then locks it; should someone else (Jenkins) have taken it in between,
the waiter keeps its place at the head of the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from agent.events import EventBus
from agent.lifecycle import Service
from agent.model import Code, Event, Refused, Resource, ResourceState
from agent.registry import Registry

T = TypeVar("T")


def selects(res: Resource, select: Mapping[str, str], resource_id: str | None) -> bool:
    """The plugin's rule: every selector equals the metadata value at its dotted path."""
    if resource_id is not None and res.id != resource_id:
        return False
    return all(res.metadata.get(name) == value for name, value in select.items())


@dataclass(eq=False)
class _Waiter:
    select: Mapping[str, str]
    resource_id: str | None
    offer: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Waitlist(Service):
    """Waiters for free resources, served in the order they came."""

    def __init__(self, registry: Registry, bus: EventBus) -> None:
        self._registry = registry
        self._bus = bus
        self._waiters: list[_Waiter] = []
        self._offered: set[str] = set()  # resources a waiter is locking right now
        self._pending = False
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        """Hear of every change."""
        self._unsubscribe = self._bus.subscribe(self._on_event)

    async def stop(self) -> None:
        """Stop hearing; waiters still waiting time out as they would."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def take(
        self,
        select: Mapping[str, str],
        resource_id: str | None,
        wait: float,
        lock: Callable[[str], Awaitable[T]],
    ) -> T:
        """Lock a free resource that matches, waiting up to ``wait`` seconds for one.

        ``lock(id)`` takes the offered resource; what it answers is answered.
        Refused UNKNOWN_RESOURCE when nothing matches at all, HELD when all
        that match stay busy.
        """
        matching = [r for r in self._registry.resources() if selects(r, select, resource_id)]
        if not matching:
            what = _describe(select, resource_id)
            raise Refused(Code.UNKNOWN_RESOURCE, f"no resource matches {what}")
        waiter = _Waiter(select, resource_id)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait if wait > 0 else None):
                while True:
                    self._dispatch()
                    if wait <= 0 and not waiter.offer.done():
                        raise Refused(Code.HELD, _busy(select, resource_id, matching))
                    rid = await waiter.offer
                    try:
                        return await lock(rid)
                    except Refused:
                        waiter.offer = asyncio.get_running_loop().create_future()
                    finally:
                        self._offered.discard(rid)
        except TimeoutError:
            raise Refused(Code.HELD, _busy(select, resource_id, matching, wait)) from None
        finally:
            self._waiters.remove(waiter)
            self._soon()  # what this waiter leaves may suit the next

    def _on_event(self, event: Event) -> None:
        self._soon()

    def _soon(self) -> None:
        if self._waiters and not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._pending = False
        waiting = [w for w in self._waiters if not w.offer.done()]
        if not waiting:
            return
        free = [
            r
            for r in self._registry.resources()
            if r.state is ResourceState.FREE and r.id not in self._offered
        ]
        for waiter in waiting:
            res = next((r for r in free if selects(r, waiter.select, waiter.resource_id)), None)
            if res is not None:
                free.remove(res)
                self._offered.add(res.id)
                waiter.offer.set_result(res.id)


def _describe(select: Mapping[str, str], resource_id: str | None) -> str:
    parts = [f"id={resource_id}"] if resource_id else []
    parts += [f"{k}={v}" for k, v in select.items()]
    return " ".join(parts) or "anything"


def _busy(
    select: Mapping[str, str], resource_id: str | None, matching: list[Resource], wait: float = 0
) -> str:
    states = ", ".join(f"{r.id} {r.state.value}" for r in matching[:10])
    waited = f" after waiting {wait:g} s" if wait > 0 else ""
    return f"no free resource matches {_describe(select, resource_id)}{waited} ({states})"

"""The core, built one way for everyone: the daemon, the test harnesses and the benchmarks.

``build_core`` locks the state directory (one agent per directory), opens the
store, rebuilds the registry from it, starts the writer and the authority's
timer, and takes them down again in reverse order.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.authority import Authority
from agent.events import EventBus, GroupSubscriber
from agent.ledger import no_sessions
from agent.model import Resource
from agent.registry import Registry
from agent.statelock import StateLock
from agent.store import Store

STATE_FILE = "state.db"


@dataclass(frozen=True, slots=True)
class Core:
    """The parts every sink and the API are built on."""

    registry: Registry
    store: Store
    bus: EventBus
    authority: Authority

    def snapshot(self) -> list[Resource]:
        """Every resource as it is now."""
        return self.registry.resources()


@contextlib.asynccontextmanager
async def build_core(
    state_dir: Path,
    *,
    clock: Callable[[], float],
    on_fatal: Callable[[BaseException], None],
    grace: float = 30.0,
    needs_session: Callable[[Resource], bool] = no_sessions,
    sinks: Sequence[GroupSubscriber] = (),
    observe_commit: Callable[[float], None] | None = None,
) -> AsyncIterator[Core]:
    """The core on the database in ``state_dir``; ``on_fatal`` hears of a failed commit.

    ``needs_session(res)``: whether a lock on ``res`` is provisioned and torn down.
    ``sinks`` hear every event from the first on, each commit's together, the
    expiries of the time the agent was down included (the audit trail).
    ``observe_commit(seconds)``: how long each commit took (called on the writer thread).
    StateLocked (a StoreError): another agent runs on ``state_dir``.
    """
    with StateLock(state_dir):
        store = Store(state_dir / STATE_FILE, clock, observe_commit)
        try:
            registry = Registry(clock, grace=grace, needs_session=needs_session)
            registry.restore(store.load())
        except BaseException:
            await store.close()
            raise
        bus = EventBus()
        for sink in sinks:
            bus.subscribe_groups(sink)
        async with store, Authority(registry, store, bus, clock, on_fatal) as authority:
            yield Core(registry, store, bus, authority)

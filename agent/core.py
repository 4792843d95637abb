"""The core, built one way for everyone: the daemon, the test harnesses and the benchmarks.

``build_core`` locks the state directory (one agent per directory), opens the
store, takes up the agent's clock where the store left it (agent/clock.py),
rebuilds the registry from it, starts the writer and the authority's timer,
and takes them down again in reverse order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent import clock as agent_clock
from agent.authority import Authority
from agent.events import EventBus, GroupSubscriber
from agent.ledger import no_sessions
from agent.model import Resource
from agent.registry import Registry
from agent.statelock import StateLock
from agent.store import Store

STATE_FILE = "state.db"
CLOCK_ANCHOR = "clock"  # the meta row with the agent clock's anchor


@dataclass(frozen=True, slots=True)
class Core:
    """The parts every sink and the API are built on."""

    registry: Registry
    store: Store
    bus: EventBus
    authority: Authority
    clock: Callable[[], float]  # the registry's: seconds that a step of the wall clock leaves be

    def snapshot(self) -> list[Resource]:
        """Every resource as it is now."""
        return self.registry.resources()


@contextlib.asynccontextmanager
async def build_core(
    state_dir: Path,
    *,
    clock: Callable[[], float] | None = None,
    grace: float = 30.0,
    needs_session: Callable[[Resource], bool] = no_sessions,
    sinks: Sequence[GroupSubscriber] = (),
    observe_commit: Callable[[float], None] | None = None,
) -> AsyncIterator[Core]:
    """The core on the database in ``state_dir``.

    ``clock``: the registry's clock; None (the daemon) for the agent's steady
    clock, continued from the one the store last ran on. ``needs_session(res)``:
    whether a lock on ``res`` is provisioned and torn down. ``sinks`` hear every
    event from the first on, each commit's together, the expiries of the time
    the agent was down included (the audit trail). ``observe_commit(seconds)``: how
    long each commit took (called on the event loop).
    StateLocked (a StoreError): another agent runs on ``state_dir``.
    """
    with StateLock(state_dir) as lock:
        store = Store(state_dir / STATE_FILE, time.time, observe_commit, keep_fds=[lock.fileno()])
        try:
            now, wall = _clock(store) if clock is None else (clock, agent_clock.as_is)
            store.clock = now
            registry = Registry(now, grace=grace, needs_session=needs_session)
            saved = store.load()
            registry.restore(saved)
        except BaseException:
            await store.close()
            raise
        bus = EventBus()
        for sink in sinks:
            bus.subscribe_groups(sink)
        authority = Authority(registry, store, bus, now, saved=saved, wall=wall)
        async with store, authority:
            yield Core(registry, store, bus, authority, now)


def _clock(store: Store) -> tuple[Callable[[], float], Callable[[float], float]]:
    """The agent's clock, going on from the one the store last ran on (saved if new)."""
    stored = agent_clock.Anchor.loads(store.read_meta(CLOCK_ANCHOR))
    times = [store.latest_time(), stored.agent if stored is not None else None]
    floor = max((t for t in times if t is not None), default=None)
    clock = agent_clock.resume(stored, floor)
    if clock.anchor != stored:
        store.write_meta(CLOCK_ANCHOR, clock.anchor.dumps())
    return clock, clock.wall

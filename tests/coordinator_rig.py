"""An in-process agent core (store, registry, authority) feeding real coordinator syncs.

For tests and benchmarks that drive source facts directly (``describe``,
``vanish``, ``set_health``) and watch what reaches the fake Jenkins, which runs
in its own thread (``tests.fakes.jenkins.JenkinsServer``). Nothing of the agent
is replaced: the rig only wires the real parts together as the daemon does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from agent.authority import Authority
from agent.config import CoordinatorSection
from agent.coordinator.sync import CoordinatorSync
from agent.events import EventBus
from agent.model import Description, Kind
from agent.registry import Registry
from agent.store import Store

IDENTITY = "resource-agent://rig"
NODE = "rig-node"


def description(rid: str, **metadata: str) -> Description:
    """A static resource's description."""
    return Description(rid, rid, Kind.STATIC, f"test resource {rid}", metadata)


class Rig:
    """The agent's core plus one sync per coordinator URL; use as ``async with``."""

    def __init__(
        self,
        state_dir: Path,
        coordinators: Iterable[dict[str, Any]],
        grace: float = 30.0,
    ) -> None:
        self.state_dir = state_dir
        self.sections = [
            CoordinatorSection.model_validate({"retry_max": 0.5, **c}) for c in coordinators
        ]
        self.grace = grace
        self.syncs: list[CoordinatorSync] = []
        self._store: Store | None = None
        self._authority: Authority | None = None

    @property
    def authority(self) -> Authority:
        """The running authority."""
        assert self._authority is not None
        return self._authority

    async def __aenter__(self) -> Rig:
        clock = time.time
        self._store = Store(self.state_dir / "state.db", clock)
        registry = Registry(clock, grace=self.grace)
        registry.restore(self._store.load())
        self._store.start()
        self._authority = Authority(registry, self._store, EventBus(), clock, self._fatal)
        self._authority.start()
        self.syncs = [CoordinatorSync(self._authority, s, NODE, IDENTITY) for s in self.sections]
        for sync in self.syncs:
            await sync.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sync in self.syncs:
            await sync.stop()
        if self._authority is not None:
            self._authority.stop()
        if self._store is not None:
            await self._store.close()

    def _fatal(self, exc: BaseException) -> None:
        raise AssertionError(f"the store failed: {exc}")


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` on the loop until truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async scenario to completion (the suite has no asyncio plugin)."""
    asyncio.run(scenario())  # type: ignore[arg-type]

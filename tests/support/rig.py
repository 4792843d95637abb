"""The agent's core, built by ``build_core``, feeding real coordinator syncs in-process.

For tests and benchmarks that drive source facts directly (``describe``,
``vanish``, ``set_health``) and watch what reaches the fake Jenkins, which runs
in its own thread (``tests.fakes.jenkins.JenkinsServer``). Nothing of the agent
is replaced: the rig only puts the real parts together as the daemon does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.authority import Authority
from agent.config import CoordinatorSection
from agent.coordinator.sync import Coordinators, CoordinatorSync
from agent.core import Core
from agent.model import Description, Kind
from tests.support.core import core_harness

IDENTITY = "resource-agent://rig"
NODE = "rig-node"


def description(rid: str, **metadata: str) -> Description:
    """A static resource's description."""
    return Description(rid, rid, Kind.STATIC, f"test resource {rid}", metadata)


class Rig:
    """The agent's core plus one sync per coordinator section; use as ``async with``."""

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
        self._core: Core | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def core(self) -> Core:
        """The running core."""
        assert self._core is not None, "the rig is not running"
        return self._core

    @property
    def authority(self) -> Authority:
        """The running authority."""
        return self.core.authority

    async def __aenter__(self) -> Rig:
        async with contextlib.AsyncExitStack() as stack:
            core = await stack.enter_async_context(
                core_harness(self.state_dir, clock=time.time, grace=self.grace)
            )
            self.syncs = [
                CoordinatorSync(core.bus, core.snapshot, s, node=NODE, identity=IDENTITY)
                for s in self.sections
            ]
            await stack.enter_async_context(Coordinators(self.syncs))
            self._core = core
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._core = None
        await self._stack.aclose()

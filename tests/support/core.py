"""The agent's real core for in-process tests: built by ``build_core``, as the daemon does."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from agent.core import Core, build_core
from agent.ledger import no_sessions
from agent.model import Resource


@contextlib.asynccontextmanager
async def core_harness(
    state_dir: Path,
    clock: Callable[[], float] = time.time,
    grace: float = 30.0,
    needs_session: Callable[[Resource], bool] = no_sessions,
) -> AsyncIterator[Core]:
    """The core on ``state_dir``, on ``clock``."""
    async with build_core(state_dir, clock=clock, grace=grace, needs_session=needs_session) as core:
        yield core

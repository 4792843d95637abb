"""Fixtures shared by the whole suite (keep small; helpers live in their own modules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.agentproc import AgentProcess, running_agent

POOL_SIZE = 300


@pytest.fixture
def agent_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AgentProcess]]:
    """Make agents (``AgentProcess`` keyword arguments; ``start=False`` to start later).

    Every agent made is stopped at the end of the test.
    """
    agents: list[AgentProcess] = []

    def make(start: bool = True, **kwargs: Any) -> AgentProcess:
        agent = AgentProcess(tmp_path_factory.mktemp("agent"), **kwargs)
        agents.append(agent)
        return agent.start() if start else agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture(scope="module")
def pool_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One agent per test module with static resources ``res-000``.. to share out."""
    resources = [f"res-{i:03d}" for i in range(POOL_SIZE)]
    with running_agent(tmp_path_factory.mktemp("pool"), resources=resources) as agent:
        yield agent


@pytest.fixture(scope="module")
def _pool_ids(pool_agent: AgentProcess) -> Iterator[str]:
    return iter(f"res-{i:03d}" for i in range(POOL_SIZE))


@pytest.fixture
def rid(_pool_ids: Iterator[str]) -> str:
    """A resource of ``pool_agent`` that no other test in the module has touched."""
    return next(_pool_ids)

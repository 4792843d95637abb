"""Fixtures shared by the whole suite (keep small; helpers live in their own modules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.agentproc import AgentProcess, running_agent

POOL_SIZE = 300


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--faults-long``: the fault-injection runs at full length (``make faults``)."""
    parser.addoption(
        "--faults-long",
        action="store_true",
        help="run the fault-injection tests long (hundreds of faults), as `make faults` does",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A long fault run gets the time it needs (an hour instead of the usual limit)."""
    if config.getoption("--faults-long"):
        for item in items:
            if "faults_long" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.timeout(3600), append=False)


@pytest.fixture
def faults_long(request: pytest.FixtureRequest) -> bool:
    """Whether the fault-injection tests run long (``--faults-long``)."""
    return bool(request.config.getoption("--faults-long"))


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

"""Fuzzing JSON-RPC decoding: any bytes, any JSON, nearly-right requests (hypothesis).

In-process first (the real app and core served from a thread: thousands of
cases in seconds), then a shorter run against a real agent process. Every
answer must be what Jenkins' client and the OpenAPI document accept, and a
request not answered OK must change nothing (tests/support/fuzzing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.agentproc import AgentProcess
from tests.support.appthread import app_in_thread
from tests.support.fuzzing import RESOURCES, Tally, bodies, exchange
from tests.support.scale import scaled

IN_PROCESS = scaled(1000)
REAL_PROCESS = scaled(150)
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with app_in_thread(tmp_path_factory.mktemp("fuzz"), RESOURCES) as url:
        yield url


def test_jsonrpc_in_process(app_url: str) -> None:
    tally = Tally()

    @given(body=bodies)
    @settings(max_examples=IN_PROCESS, deadline=None, suppress_health_check=FIXTURES)
    def one(body: bytes) -> None:
        exchange(app_url, body, tally)

    one()
    print(f"JSON-RPC in process: {tally.cases} cases, {tally.ok} answered OK (undone)")
    assert tally.cases >= IN_PROCESS


def test_jsonrpc_real_process(agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> None:
    agent = agent_factory(resources=list(RESOURCES))
    tally = Tally()

    @given(body=bodies)
    @settings(max_examples=REAL_PROCESS, deadline=None, suppress_health_check=FIXTURES)
    def one(body: bytes) -> None:
        exchange(agent.url, body, tally)

    one()
    print(f"JSON-RPC real process: {tally.cases} cases, {tally.ok} answered OK (undone)")
    assert agent.running() and "Traceback" not in agent.log(), agent.log_tail()
    assert tally.cases >= REAL_PROCESS

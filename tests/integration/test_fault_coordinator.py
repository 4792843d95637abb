"""Coordinator outages: the strict Jenkins refuses, fails or hangs while the lab keeps changing.

The real agent process watches a umockdev testbed (udev on, adb off) and keeps
one strict fake Jenkins in step. While Jenkins is down -- refusing
connections, then answering 500s, then hanging (requests held unanswered,
then carried out late, as a wedged Jenkins works through its queue) -- phones
come and go, another controller reserves, locks and releases, people lock
and release, an administrator disables and enables. When Jenkins is back,
everything it believes must match the agent (tests/support/convergence.py).
How long that takes and how many requests it costs is printed here and
measured in bench/outage.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.fakes.umockdev import Testbed, umockdev_active
from tests.support.churn import OTHER_JENKINS, Churn
from tests.support.convergence import converged
from tests.support.coordinator import NODE, coordinator
from tests.support.outage import outage
from tests.support.scale import scaled
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)"
)

STATICS = ["board-1", "board-2", "board-3"]
STEPS = scaled(12)  # changes per kind of outage
T = TypeVar("T")
SLOW = 2.0  # seconds a slow Jenkins takes to answer


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


@pytest.fixture
def jenkins() -> Iterator[JenkinsServer]:
    with JenkinsServer(FakeJenkins([NODE])) as server:
        yield server


def lab_agent(factory: Callable[..., AgentProcess], testbed: Testbed, server: JenkinsServer,
              **options: Any) -> AgentProcess:  # fmt: skip
    """The agent on the testbed with static boards, a 1 s grace period and one Jenkins."""
    return factory(
        udev=True,
        env=testbed.env,
        resources=STATICS,
        config={
            "agent": {"node": NODE, "grace_period": 1.0},
            "coordinator": [coordinator(server, **options)],
        },
    )


def test_outage_of_every_kind_while_the_lab_changes_then_convergence(
    agent_factory: Callable[..., AgentProcess], testbed: Testbed, jenkins: JenkinsServer
) -> None:
    root = testbed.controller()
    agent = lab_agent(agent_factory, testbed, jenkins)
    churn = Churn(agent, testbed, root, STATICS)
    for _ in range(3):
        churn.plug_new()
    converged(agent, jenkins)

    cost = outage(churn, jenkins, STEPS)
    print(f"converged {cost.seconds:.2f} s after the outage ({cost.changes} changes); "
          f"{cost.requests} requests besides {cost.held} held ones")  # fmt: skip
    assert cost.changes >= 3 * STEPS
    assert cost.requests <= 3 * len(agent.get("/api/resources")["resources"]), cost


def test_a_command_carried_out_late_by_a_hung_jenkins_is_corrected(
    agent_factory: Callable[..., AgentProcess], testbed: Testbed, jenkins: JenkinsServer
) -> None:
    agent = lab_agent(agent_factory, testbed, jenkins)
    converged(agent, jenkins)
    jenkins.jenkins.outage.hang = True
    key = agent.post("/api/resources/board-1/lock", {"holder": "alice"}).json()["hold"]["key"]
    wait_for(lambda: jenkins.jenkins.held == 1, what="the lock command held")
    assert agent.post("/api/resources/board-1/release", {"key": key}).status == 200
    # The agent gave up on the lock command; Jenkins carries it out when it wakes.
    wait_for(lambda: agent.get("/api/coordinators")["coordinators"][0]["last_error"])
    jenkins.jenkins.outage.hang = False
    wait_for(lambda: jenkins.jenkins.recorded("lockResource"), what="the late lock")
    converged(agent, jenkins)
    assert jenkins.jenkins.resources(NODE)["board-1"]["locked"] is None


def test_reconciliation_corrects_a_hold_jenkins_gives_to_someone_else(
    agent_factory: Callable[..., AgentProcess], testbed: Testbed, jenkins: JenkinsServer
) -> None:
    agent = lab_agent(agent_factory, testbed, jenkins)
    converged(agent, jenkins, quiet=0)
    assert agent.post("/api/resources/board-2/lock", {"holder": "bob"}).status == 200
    converged(agent, jenkins, quiet=0)
    assert agent.terminate() == 0
    # Meanwhile a late command gave it to another holder in Jenkins.
    jenkins.jenkins.httpcli("lockResource", None, {
        "node": NODE, "id": "board-2", "lockedBy": "job/late/1/",
        "clientInfo": '{"id":"http://other/","url":"job/late/1/"}'})  # fmt: skip
    agent.start()
    converged(agent, jenkins, quiet=0)
    assert jenkins.jenkins.resources(NODE)["board-2"]["locked"]["stashed-by"] == "bob"


def test_a_slow_jenkins_never_delays_an_answer(
    agent_factory: Callable[..., AgentProcess], testbed: Testbed, jenkins: JenkinsServer
) -> None:
    jenkins.jenkins.outage.delay = SLOW  # every request answered SLOW seconds late
    agent = lab_agent(agent_factory, testbed, jenkins, timeout=10.0)
    rpc = JsonRpc4jClient(agent.url, jenkins=OTHER_JENKINS)
    took: list[float] = []

    def timed(call: Callable[..., T], *args: Any) -> T:
        began = time.monotonic()
        answer = call(*args)
        took.append(time.monotonic() - began)
        return answer

    for _ in range(3):
        for rid in STATICS:
            key = timed(rpc.reserve, rid, 60, "job/slow/").key
            assert timed(rpc.lock, rid, key, "job/slow/1/").ok
            assert timed(rpc.release, rid, key, "job/slow/1/").ok
            resp = timed(agent.post, f"/api/resources/{rid}/lock", {"holder": "alice"})
            assert resp.status == 200, resp.body
            body = {"key": resp.json()["hold"]["key"]}
            assert timed(agent.post, f"/api/resources/{rid}/release", body).status == 200
    slowest = max(took)
    print(f"slowest answer {slowest * 1000:.1f} ms while Jenkins takes {SLOW} s a request")
    assert slowest < SLOW / 2  # loosely: figures in bench/slow_jenkins.py
    converged(agent, jenkins, quiet=0)
    assert all(r.status == 200 for r in jenkins.jenkins.recorded()), "Jenkins refused some"
    assert jenkins.jenkins.recorded("update"), "Jenkins was never asked"

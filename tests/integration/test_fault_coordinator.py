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
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.umockdev import Testbed, umockdev_active
from tests.support.churn import Churn
from tests.support.convergence import differences
from tests.support.coordinator import NODE, coordinator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)"
)

STATICS = ["board-1", "board-2", "board-3"]
STEPS = 12  # changes per kind of outage
QUIET = 2.0  # a match must last this long (past the agent's re-read after an outage)
CONVERGE_TIMEOUT = 30.0


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


def gap(agent: AgentProcess, server: JenkinsServer) -> list[str]:
    """What Jenkins believes that the agent does not ([] when converged)."""
    return differences(agent.get("/api/resources")["resources"], server.jenkins.resources(NODE))


def in_sync(agent: AgentProcess) -> bool:
    return all(c["state"] == "in sync" for c in agent.get("/api/coordinators")["coordinators"])


def converged(agent: AgentProcess, server: JenkinsServer, quiet: float = QUIET) -> float:
    """Wait until Jenkins matches the agent and keeps matching for ``quiet`` seconds.

    Answers when that lasting match began, in seconds from the call.
    """
    began = time.monotonic()
    matched: float | None = None
    while True:
        now = time.monotonic()
        if in_sync(agent) and not gap(agent, server):
            matched = now if matched is None else matched
            if now - matched >= quiet:
                return matched - began
        else:
            matched = None
        if now - began > CONVERGE_TIMEOUT:
            raise AssertionError(
                f"Jenkins does not match the agent after {CONVERGE_TIMEOUT} s: "
                f"{gap(agent, server)}\n{agent.log_tail()}"
            )
        time.sleep(0.02)


def test_outage_of_every_kind_while_the_lab_changes_then_convergence(
    agent_factory: Callable[..., AgentProcess], testbed: Testbed, jenkins: JenkinsServer
) -> None:
    root = testbed.controller()
    agent = lab_agent(agent_factory, testbed, jenkins)
    churn = Churn(agent, testbed, root, STATICS)
    for _ in range(3):
        churn.plug_new()
    converged(agent, jenkins)

    jenkins.down()  # connections refused
    for _ in range(STEPS):
        churn.step()
    wait_for(lambda: not in_sync(agent), what="the agent to notice")
    jenkins.jenkins.outage.errors = True  # back, but every answer an HTML 500
    jenkins.up()
    for _ in range(STEPS):
        churn.step()
    jenkins.jenkins.outage.errors = False
    jenkins.jenkins.outage.hang = True  # wedged: requests pile up, unanswered
    for _ in range(STEPS):
        churn.step()
    wait_for(lambda: jenkins.jenkins.held >= 2, what="requests held by the hung Jenkins")
    before = len(jenkins.jenkins.recorded())
    held = jenkins.jenkins.held
    jenkins.jenkins.outage.hang = False  # it works through its queue, then answers again
    took = converged(agent, jenkins)
    spent = len(jenkins.jenkins.recorded()) - before - held
    print(f"converged {took:.2f} s after the outage; {spent} requests besides {held} held ones")
    assert churn.log, "the churn changed nothing"
    assert spent <= 3 * len(agent.get("/api/resources")["resources"]), spent


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

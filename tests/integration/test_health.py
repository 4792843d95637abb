"""Health that tells the truth: ``degraded`` with its reasons, and ``status`` that fails.

A real agent and the strict test Jenkins, made to answer with HTML error pages
(as Jenkins does on an uncaught exception) or to refuse the agent's token; an
adb server that is not there; a resource quarantined by a failing session.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer, User
from tests.support.coordinator import NODE, coordinator
from tests.support.net import free_port
from tests.support.waiting import wait_for


@pytest.fixture
def jenkins() -> Iterator[JenkinsServer]:
    server = JenkinsServer(FakeJenkins([NODE], {"agent": User("right-token")})).start()
    yield server
    server.stop()


def health(agent: AgentProcess) -> dict[str, Any]:
    return agent.get("/api/health")  # type: ignore[no-any-return]


def status(agent: AgentProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--url", agent.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def with_jenkins(agent_factory: Any, jenkins: JenkinsServer, token: Path, secret: str) -> Any:
    """An agent keeping ``jenkins`` informed as user ``agent`` with ``secret`` for a token."""
    token.write_text(secret)
    table = coordinator(jenkins, user="agent", token_file=str(token))
    return agent_factory(resources=["r1"], config={"agent": {"node": NODE}, "coordinator": [table]})


def test_a_failing_coordinator_degrades_health_and_fails_status(
    agent_factory: Any, jenkins: JenkinsServer, tmp_path: Path
) -> None:
    agent = with_jenkins(agent_factory, jenkins, tmp_path / "jenkins.token", "right-token")
    wait_for(lambda: health(agent)["status"] == "ok", what="in sync first")
    ok = status(agent)
    assert ok.returncode == 0 and "in sync" in ok.stdout and "problem" not in ok.stdout, ok

    jenkins.jenkins.outage.errors = True  # Jenkins answers 500 with an HTML page
    assert agent.post("/api/resources/r1/lock").status == 200  # a change to send
    answer = wait_for(lambda: (h := health(agent))["status"] == "degraded" and h, what="degraded")
    [problem] = answer["problems"]
    assert problem.startswith(f"coordinator {jenkins.url} is retrying: "), problem
    assert "an HTML page titled 'Error 500'" in problem, problem
    assert "<" not in problem and "Oops" not in problem  # the page itself is never shown

    failing = status(agent)
    assert failing.returncode == 1, failing
    problems = [ln for ln in failing.stdout.splitlines() if ln.startswith("problem: ")]
    assert len(problems) == 1 and "an HTML page titled 'Error 500'" in problems[0], failing.stdout
    assert "<html" not in failing.stdout + failing.stderr

    jenkins.jenkins.outage.errors = False
    wait_for(lambda: health(agent)["status"] == "ok", what="healthy again")
    assert status(agent).returncode == 0


def test_bad_credentials_are_failing_not_retrying(
    agent_factory: Any, jenkins: JenkinsServer, tmp_path: Path
) -> None:
    agent = with_jenkins(agent_factory, jenkins, tmp_path / "jenkins.token", "wrong-token")
    answer = wait_for(lambda: (h := health(agent))["status"] == "degraded" and h, what="degraded")
    assert answer["problems"][0].startswith(f"coordinator {jenkins.url} is failing: ")
    assert "HTTP 401" in answer["problems"][0]
    run = status(agent)
    assert run.returncode == 1 and "problem: coordinator" in run.stdout


def test_no_adb_server_and_a_quarantined_resource_degrade_health(agent_factory: Any) -> None:
    session = {
        "kind": "static",
        "quarantine_after": 1,
        "lock_wait": 10.0,
        "provision": [{"step": "command", "run": ["false"]}],
    }
    port = free_port()
    agent: AgentProcess = agent_factory(
        resources=["q1"],
        adb=True,
        config={"adb": {"server": f"127.0.0.1:{port}"}, "session": [session]},
    )
    answer = wait_for(lambda: (h := health(agent))["status"] == "degraded" and h, what="degraded")
    assert answer["problems"] == [
        f"the adb server at 127.0.0.1:{port} does not answer ([adb] is enabled)"
    ]
    refused = agent.post("/api/resources/q1/lock")
    assert refused.json()["error"]["code"] == Code.PROVISIONING_FAILED
    problems = wait_for(lambda: len(p := health(agent)["problems"]) == 2 and p, what="quarantine")
    assert problems[1].startswith("resource q1 is quarantined: 1 provisionings failed"), problems
    # No coordinator fails: status says so with its lines, and exits 0.
    run = status(agent)
    assert run.returncode == 0, run
    assert [ln for ln in run.stdout.splitlines() if ln.startswith("problem: ")] == [
        f"problem: {p}" for p in problems
    ]

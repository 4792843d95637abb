"""The real agent process keeps strict test Jenkins controllers in step.

Each test starts ``resource-agent serve`` with ``[[coordinator]]`` tables that
point at in-process fake Jenkins servers, drives the agent the way Jenkins and
people do (JSON-RPC, REST), and checks what the Jenkins servers received and
now believe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import TLS_CERT, FakeJenkins, JenkinsServer, User
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.coordinator import IDENTITY, NODE, coordinator, flat
from tests.support.openapi import check
from tests.support.waiting import wait_for


@pytest.fixture
def jenkins_factory() -> Iterator[Callable[..., JenkinsServer]]:
    """Start fake Jenkins servers; all are stopped at the end of the test."""
    servers: list[JenkinsServer] = []

    def make(*nodes: str, users: dict[str, User] | None = None) -> JenkinsServer:
        server = JenkinsServer(FakeJenkins(nodes or (NODE,), users)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def held(server: JenkinsServer, rid: str, node: str = NODE) -> str | None:
    """``reserved``/``locked`` by whom on that Jenkins, or None."""
    res = server.jenkins.resources(node).get(rid)
    if res is None:
        return None
    for kind in ("locked", "reserved"):
        if res[kind]:
            return f"{kind} by {res[kind]['stashed-by']}"
    return None


def coordinators(agent: AgentProcess) -> list[dict[str, Any]]:
    """``GET /api/coordinators``, checked against the OpenAPI schema every time."""
    result: list[dict[str, Any]] = check(
        "/api/coordinators", "GET", agent.request("GET", "/api/coordinators")
    )["coordinators"]
    return result


def in_sync(agent: AgentProcess) -> bool:
    return all(c["state"] == "in sync" and c["pending"] == 0 for c in coordinators(agent))


def test_registers_resources_and_forwards_holds_to_every_coordinator(
    tmp_path: Path, agent_factory: Callable[..., AgentProcess], jenkins_factory: Any
) -> None:
    a = jenkins_factory(users={"agent": User("token-a")})
    b = jenkins_factory("other-name")
    b.jenkins.add_treenode("other-name", "Phones")  # made by an administrator
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "jenkins-a.token").write_text("token-a\n")
    agent = agent_factory(
        resources=[
            {"id": "r1", "description": "phone one",
             "metadata": {"model": "m1", "android.release": "14"}},
            {"id": "r2", "name": "second"},
        ],
        config={
            "agent": {"node": NODE},
            "coordinator": [
                coordinator(a, user="agent", token_file="jenkins-a.token"),
                coordinator(b, node="other-name", tree="phones"),
            ],
        },
        env={"CREDENTIALS_DIRECTORY": str(creds)},
    )  # fmt: skip
    wait_for(lambda: in_sync(agent), what="both coordinators in sync")
    # Registration: the agent's node by default, one tree, the exact documents.
    [tree] = a.jenkins.snapshot(NODE)
    assert (tree["metadata-type"], tree["name"]) == ("metadata-tree", "external-resources")
    r1 = a.jenkins.resources(NODE)["r1"]
    assert (r1["name"], r1["description"], r1["enabled"]) == ("r1", "phone one", True)
    assert flat(r1) == {"model": "m1", "android.release": "14"}
    assert a.jenkins.resources(NODE)["r2"]["description"] == "second"
    [update] = a.jenkins.recorded("update")  # both resources in one post
    assert update.user == "agent" and update.params["replace"] == "true"
    [phones] = b.jenkins.snapshot("other-name")
    assert phones["metadata-type"] == "externalresource-treenode"  # kept its type
    assert {r["id"] for r in phones["children"]} == {"r1", "r2"}

    # Jenkins A reserves and locks through JSON-RPC: A ignores the echo, B marks it.
    rpc = JsonRpc4jClient(agent.url, jenkins=a.url)
    key = rpc.reserve("r1", 30, "job/phone-tests/").key
    wait_for(lambda: held(b, "r1", "other-name") == "reserved by job/phone-tests/")
    rpc.lock("r1", key, "job/phone-tests/12/")
    wait_for(lambda: held(b, "r1", "other-name") == "locked by job/phone-tests/12/")
    rpc.release("r1", key, "job/phone-tests/12/")
    wait_for(lambda: held(b, "r1", "other-name") is None)
    wait_for(lambda: in_sync(agent))
    for server in (a, b):
        sent = [r for r in server.jenkins.recorded() if r.params.get("id") == "r1"]
        assert [r.command for r in sent] == ["reserveResource", "lockResource", "releaseResource"]
        for r in sent:
            assert r.params["clientInfo"] == json.dumps(
                {"id": a.url, "url": r.client_info["url"]}, separators=(",", ":")
            )
        expected = "Ignored" if server is a else "OK"
        assert [r.answer["message"] for r in sent] == [expected] * 3
    assert held(a, "r1") is None  # A's copy was never touched by its own echo

    # A lock taken through REST carries the agent's own identity: both mark it.
    assert agent.post("/api/resources/r2/lock", {"holder": "alice"}).status == 200
    wait_for(lambda: held(a, "r2") == "locked by alice" == held(b, "r2", "other-name"))
    info = a.jenkins.recorded("lockResource")[-1].client_info
    assert info == {"id": IDENTITY, "url": "alice"}

    # `resource-agent status` prints each coordinator's state.
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--url", agent.url],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    assert f"{a.url} (node {NODE}, tree external-resources): in sync" in out
    assert f"{b.url} (node other-name, tree phones): in sync" in out


def test_start_up_reconciliation_makes_jenkins_match_the_agent(
    agent_factory: Callable[..., AgentProcess], jenkins_factory: Any
) -> None:
    server = jenkins_factory()
    # First run without the coordinator: take a lock Jenkins will not know of.
    agent = agent_factory(resources=["r1", "r2"], config={"agent": {"node": NODE}})
    assert agent.post("/api/resources/r2/lock", {"holder": "bob"}).status == 200
    assert agent.terminate() == 0

    def res(rid: str, **extra: Any) -> dict[str, Any]:
        return {"metadata-type": "external-resource", "name": rid, "id": rid,
                "description": "", "enabled": True, "reserved": None, "locked": None,
                "children": [], **extra}  # fmt: skip

    stale_lock = {"stashed-by": "job/x/3/", "type": "EXTERNAL", "lease": None}
    serial = {"metadata-type": "metadata-string", "name": "serial", "value": "123"}
    server.jenkins.add_node(NODE, [{
        "metadata-type": "metadata-tree", "name": "external-resources", "children": [
            res("old-phone", locked=stale_lock),
            res("r1", reserved=stale_lock, children=[serial]),
        ]}])  # fmt: skip
    agent.configure({"coordinator": [coordinator(server)]})
    agent.start()
    wait_for(lambda: in_sync(agent), what="in sync after reconciliation")
    jenkins = server.jenkins.resources(NODE)
    assert jenkins["old-phone"]["enabled"] is False and held(server, "old-phone") is None
    assert held(server, "r1") is None
    assert flat(jenkins["r1"]) == {"serial": ""}  # a post cannot remove it: blanked
    assert held(server, "r2") == "locked by bob"
    assert jenkins["r2"]["enabled"] is True
    [get] = server.jenkins.recorded("get")
    assert get.params == {"node": NODE}
    commands = sorted((r.command, r.params["id"]) for r in server.jenkins.recorded()
                      if r.command not in ("get", "update"))  # fmt: skip
    assert commands == [
        ("disable", "old-phone"), ("lockResource", "r2"),
        ("releaseResource", "old-phone"), ("releaseResource", "r1"),
    ]  # fmt: skip
    stale = server.jenkins.recorded("releaseResource")[0].client_info
    assert stale["id"] == IDENTITY  # on the agent's own authority, so no Jenkins ignores it


def test_outage_then_convergence(
    agent_factory: Callable[..., AgentProcess], jenkins_factory: Any
) -> None:
    server = jenkins_factory()
    agent = agent_factory(
        resources=["r1", "r2", "r3"],
        config={"agent": {"node": NODE}, "coordinator": [coordinator(server)]},
    )
    wait_for(lambda: in_sync(agent))
    server.down()
    key = agent.post("/api/resources/r1/lock", {"holder": "a"}).json()["hold"]["key"]
    assert agent.post("/api/resources/r1/release", {"key": key}).status == 200
    assert agent.post("/api/resources/r2/lock", {"holder": "b"}).status == 200
    assert agent.post("/api/resources/r3/disable", {"reason": "broken"}).status == 200

    def failing() -> dict[str, Any] | None:
        [c] = coordinators(agent)
        return c if c["state"] == "retrying" and c["last_error"] else None

    status = wait_for(failing, what="the outage reported")
    assert status["last_error"]["kind"] == "unreachable" and status["pending"] >= 2
    assert status["next_retry"] is not None
    server.jenkins.outage.errors = True  # back, but answering 500s
    server.up()
    wait_for(lambda: coordinators(agent)[0]["last_error"]["kind"] == "server")
    server.jenkins.outage.errors = False
    wait_for(lambda: in_sync(agent), what="convergence after the outage")
    assert held(server, "r1") is None and held(server, "r2") == "locked by b"
    assert server.jenkins.resources(NODE)["r3"]["enabled"] is False
    ok = [r for r in server.jenkins.recorded() if r.status == 200 and r.command != "update"]
    # Coalesced: r1's lock and release cancelled out; nothing else was needed.
    assert sorted((r.command, r.params["id"]) for r in ok if r.command != "get") == [
        ("disable", "r3"), ("lockResource", "r2")]  # fmt: skip


def test_a_hanging_coordinator_delays_nothing_else(
    agent_factory: Callable[..., AgentProcess], jenkins_factory: Any
) -> None:
    slow, fine = jenkins_factory(), jenkins_factory()
    slow.jenkins.outage.delay = 30.0  # far beyond the 1 s request timeout
    agent = agent_factory(
        resources=["r1"],
        config={"agent": {"node": NODE}, "coordinator": [coordinator(slow), coordinator(fine)]},
    )
    assert agent.post("/api/resources/r1/lock", {"holder": "c"}).status == 200
    wait_for(lambda: held(fine, "r1") == "locked by c", what="the healthy Jenkins updated")
    wait_for(lambda: coordinators(agent)[0]["last_error"] is not None)
    hung, ok = coordinators(agent)
    assert hung["state"] == "retrying" and "no answer in time" in hung["last_error"]["message"]
    assert hung["last_success"] is None and hung["pending"] > 0
    assert ok["state"] == "in sync" and ok["last_error"] is None


def test_configuration_problems_are_named(
    tmp_path: Path, agent_factory: Callable[..., AgentProcess], jenkins_factory: Any
) -> None:
    locked = jenkins_factory(users={"agent": User("right")})
    other = jenkins_factory("somewhere-else")
    token = tmp_path / "token"
    token.write_text("wrong")
    agent = agent_factory(
        resources=["r1"],
        config={
            "agent": {"node": NODE},
            "coordinator": [
                coordinator(locked, user="agent", token_file=str(token)),
                coordinator(other, node="missing-node"),
            ],
        },
    )

    def errors() -> list[str] | None:
        found = [c["last_error"] for c in coordinators(agent)]
        return [e["message"] for e in found] if all(found) else None

    bad_token, no_node = wait_for(errors, what="both problems reported")
    assert "401" in bad_token and "API token" in bad_token
    assert "no node named 'missing-node'" in no_node and "create that node" in no_node
    assert [c["state"] for c in coordinators(agent)] == ["failing", "failing"]
    # The administrator fixes both; the agent converges by itself.
    token.write_text("right")
    other.jenkins.add_node("missing-node")
    wait_for(lambda: "r1" in locked.jenkins.resources(NODE), what="registered with the new token")
    wait_for(lambda: "r1" in other.jenkins.resources("missing-node"), what="registered on the node")
    wait_for(lambda: in_sync(agent))


def test_https_with_a_private_ca(agent_factory: Callable[..., AgentProcess]) -> None:
    with JenkinsServer(FakeJenkins(["trusted", "untrusted", "unverified"]), tls=True) as server:
        agent = agent_factory(
            resources=["r1"],
            config={
                "coordinator": [
                    coordinator(server, node="trusted", ca_file=str(TLS_CERT)),
                    coordinator(server, node="untrusted"),
                    coordinator(server, node="unverified", verify=False),
                ]
            },
        )
        wait_for(lambda: "r1" in server.jenkins.resources("trusted"))
        wait_for(lambda: "r1" in server.jenkins.resources("unverified"))
        wait_for(lambda: coordinators(agent)[1]["last_error"] is not None)
        untrusted = coordinators(agent)[1]
        assert untrusted["state"] == "failing" and untrusted["last_error"]["kind"] == "config"
        assert "not trusted" in untrusted["last_error"]["message"]
        assert "ca_file" in untrusted["last_error"]["message"]
        assert server.jenkins.resources("untrusted") == {}


def test_a_stopping_agent_lets_a_healthy_coordinator_take_what_is_pending(
    agent_factory: Callable[..., AgentProcess],
    jenkins_factory: Callable[..., JenkinsServer],
) -> None:
    server = jenkins_factory()
    # A long batch window: without the drain, the lock would still be waiting
    # in it when the agent stops.
    agent = agent_factory(
        resources=["r1"],
        config={"agent": {"node": NODE}, "coordinator": [coordinator(server, batch_window=1.0)]},
    )
    wait_for(lambda: "r1" in server.jenkins.resources(NODE), what="r1 registered")
    locked = agent.post("/api/resources/r1/lock", {"holder": "alice"})
    assert locked.status == 200, locked.body
    assert agent.terminate() == 0
    [lock] = server.jenkins.recorded("lockResource")
    assert lock.params["id"] == "r1"
    assert lock.client_info["id"] == IDENTITY

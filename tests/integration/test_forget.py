"""Resources that leave for good: ``forget`` for an unplugged one, retirement for a deleted one.

Both end the same way for everyone: gone from the API and the event stream,
gone from the state database, and disabled in every coordinator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.fakes.umockdev import Testbed, phone, umockdev_active
from tests.support.coordinator import NODE, coordinator
from tests.support.sse import EventReader
from tests.support.waiting import wait_for

AgentFactory = Callable[..., AgentProcess]


def jenkins_view(server: JenkinsServer, rid: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = server.jenkins.resources(NODE).get(rid)
    return found


@pytest.mark.skipif(not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)")
def test_an_unplugged_phone_is_forgotten_everywhere(agent_factory: AgentFactory) -> None:
    with Testbed() as testbed, JenkinsServer(FakeJenkins([NODE])) as server:
        path = testbed.plug(testbed.controller(), 1, phone("OLD1"))
        config = {"agent": {"node": NODE}, "coordinator": [coordinator(server)]}
        agent = agent_factory(udev=True, env=testbed.env, config=config)
        wait_for(lambda: (jenkins_view(server, "OLD1") or {}).get("enabled") is True)
        refused = agent.post("/api/resources/OLD1/forget")
        assert refused.status == 409 and refused.json()["error"]["code"] == Code.PRESENT

        testbed.unplug(path)
        wait_for(lambda: agent.get("/api/resources/OLD1")["state"] == "absent")
        result = JsonRpc4jClient(agent.url).reserve("OLD1", 3, "job/x/")
        assert (result.status, result.code) == ("NO", Code.ABSENT)
        with EventReader(agent.url) as events:
            events.next()
            forgotten = agent.post("/api/resources/OLD1/forget", b"")
            assert forgotten.status == 200, forgotten.body
            assert forgotten.json()["id"] == "OLD1"
            # The unplug's own "updated" may still be on its way (it is sent once committed).
            removed = events.until("resource")
            while removed.data["type"] == "updated":
                removed = events.until("resource")
            assert (removed.data["type"], removed.data["resource"]["id"]) == ("removed", "OLD1")
        assert agent.request("GET", "/api/resources/OLD1").status == 404
        assert "action=forget resource=OLD1" in agent.wait_log("agent.audit: action=forget")
        wait_for(lambda: (jenkins_view(server, "OLD1") or {}).get("enabled") is False)
        agent.restart()
        assert agent.get("/api/resources")["resources"] == []


def test_a_deleted_static_resource_is_kept_while_held_then_retired(
    agent_factory: AgentFactory,
) -> None:
    with JenkinsServer(FakeJenkins([NODE])) as server:
        config = {"agent": {"node": NODE}, "coordinator": [coordinator(server)]}
        agent = agent_factory(resources=["printer", "scope"], config=config)
        key = agent.post("/api/resources/printer/lock", {}).json()["hold"]["key"]
        wait_for(lambda: (jenkins_view(server, "scope") or {}).get("enabled") is True)
        agent.terminate()
        agent.configure({"resource": []})
        agent.start()
        agent.wait_log("static resource scope is no longer in the config: retiring it")
        assert [r["id"] for r in agent.get("/api/resources")["resources"]] == ["printer"]
        assert "action=forget" not in agent.run_log()  # nobody asked: not an audited change
        assert agent.get("/api/resources/printer")["state"] == "locked"  # its holder keeps it
        wait_for(lambda: (jenkins_view(server, "scope") or {}).get("enabled") is False)
        assert agent.post("/api/resources/printer/release", {"key": key}).status == 200
        assert agent.get("/api/resources")["resources"] == []
        wait_for(lambda: (jenkins_view(server, "printer") or {}).get("enabled") is False)

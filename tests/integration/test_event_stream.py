"""``GET /api/events``: a snapshot, then every committed change, resumable by id."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.coordinator import NODE, coordinator
from tests.support.sse import EventReader
from tests.support.waiting import wait_for

AgentFactory = Callable[..., AgentProcess]
BUILD = "job/phone-tests/12/"


def test_snapshot_then_each_change_without_keys(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=[{"id": "pixel", "metadata": {"model": "Pixel 7"}}, "scope"])
    with EventReader(agent.url) as events:
        assert events.response.getheader("Content-Type", "").startswith("text/event-stream")
        snap = events.next()
        assert snap.event == "snapshot" and events.retry == 1000
        assert snap.data["agent"]["version"] and snap.data["agent"]["node"]
        assert [r["id"] for r in snap.data["resources"]] == ["pixel", "scope"]
        assert snap.data["resources"][0]["metadata"] == {"model": "Pixel 7"}

        jenkins = JsonRpc4jClient(agent.url)
        started = time.monotonic()
        reserved = jenkins.reserve("pixel", 30, "job/phone-tests/")
        locked = jenkins.lock("pixel", reserved.key, BUILD)
        first, second = events.next(), events.next()
        assert time.monotonic() - started < 1.0  # live: well within a second
        assert (first.data["type"], second.data["type"]) == ("reserved", "locked")
        assert second.data["resource"]["state"] == "locked"
        assert second.data["hold"]["holder"]["url"] == BUILD
        assert second.id > first.id and first.id.split(".")[0] == snap.id.split(".")[0]
        released = jenkins.release("pixel", locked.key, BUILD)
        assert released.ok
        ended = events.next()
        assert (ended.data["type"], ended.data["ended"]) == ("released", "released")
        assert reserved.key
        for sse in (first, second, ended):
            assert reserved.key not in str(sse.data)  # a key is a capability: never streamed


def test_a_client_resumes_with_exactly_what_it_missed(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a", "b"])
    with EventReader(agent.url) as events:
        last = events.next().id
    assert agent.post("/api/resources/a/disable", {"reason": "cracked"}).status == 200
    assert agent.post("/api/resources/b/lock", {}).status == 200
    with EventReader(agent.url, last_id=last) as events:
        missed = [events.next(), events.next()]
        assert [(m.event, m.data["type"], m.data["resource"]["id"]) for m in missed] == [
            ("resource", "disabled", "a"),
            ("resource", "locked", "b"),
        ]
        assert missed[0].data["resource"]["disabled_reason"] == "cracked"
        assert events.silent_for(0.3)  # nothing twice, no snapshot
    with EventReader(agent.url, last_id=missed[1].id) as events:
        assert events.silent_for(0.3)  # up to date


def test_an_id_it_cannot_resume_gets_a_snapshot(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a"])
    with EventReader(agent.url) as events:
        last = events.next().id
    agent.restart()
    for stale in (last, "nonsense", f"{last.split('.')[0]}.999999"):
        with EventReader(agent.url, last_id=stale) as events:
            assert events.next().event == "snapshot", stale
    with EventReader(agent.url, path=f"/api/events?last_event_id={last}") as events:
        assert events.next().event == "snapshot"


def test_open_streams_end_at_once_when_the_agent_stops(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a"])
    readers = [EventReader(agent.url) for _ in range(3)]
    for reader in readers:
        reader.next()
    started = time.monotonic()
    assert agent.terminate() == 0
    assert time.monotonic() - started < 5  # not the 10 s shutdown timeout
    for reader in readers:
        try:
            reader.next()
            raise AssertionError("the stream went on")
        except (EOFError, ConnectionError):
            pass
        reader.close()


def test_coordinator_changes_are_streamed(agent_factory: AgentFactory) -> None:
    with JenkinsServer(FakeJenkins([NODE])) as server:
        agent = agent_factory(
            resources=["a"], config={"agent": {"node": NODE}, "coordinator": [coordinator(server)]}
        )
        wait_for(lambda: agent.get("/api/coordinators")["coordinators"][0]["state"] == "in sync")
        with EventReader(agent.url) as events:
            [sync] = events.next().data["coordinators"]
            assert (sync["url"], sync["state"]) == (server.url, "in sync")
            server.down()
            assert agent.post("/api/resources/a/disable", {}).status == 200
            changed = events.until("coordinators")
            assert changed.data["coordinators"][0]["state"] in ("syncing", "retrying")
            server.up()

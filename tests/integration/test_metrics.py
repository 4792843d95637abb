"""``GET /metrics``: what a fleet's Prometheus scrapes, counted by the agent's real parts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.fakes.umockdev import Testbed, phone, umockdev_active
from tests.support.coordinator import NODE, coordinator
from tests.support.scrape import Scrape
from tests.support.waiting import wait_for

AgentFactory = Callable[..., AgentProcess]
P = "resource_agent_"


def test_holds_refusals_ends_and_requests_are_counted(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a", "b", "c"])
    jenkins = JsonRpc4jClient(agent.url)
    reserved = jenkins.reserve("a", 30, "job/x/")
    assert jenkins.lock("a", reserved.key, "job/x/1/").ok
    assert not jenkins.reserve("a", 30, "job/y/").ok  # held
    assert agent.post("/api/resources/b/disable", {}).status == 200
    assert agent.post("/api/resources/b/lock", {}).status == 409  # disabled
    assert agent.post("/api/resources/c/lock", {"lease": 0.2}).status == 200
    assert jenkins.release("a", reserved.key, "job/x/1/").ok
    agent.request("GET", "/api/resources/zz")
    agent.request("GET", "/no/such/page")

    def expired() -> Scrape | None:
        s = Scrape(agent)
        return s if s.value(P + "hold_ends_total", reason="lease expired") == 1 else None

    m = wait_for(expired, what="the lease to expire")
    assert m.content_type.startswith("text/plain; version=0.0.4")
    assert m.value(P + "holds_total", kind="reserved") == 1
    assert m.value(P + "holds_total", kind="locked") == 2
    assert m.value(P + "holds_refused_total", action="reserve", reason="held") == 1
    assert m.value(P + "holds_refused_total", action="lock", reason="disabled") == 1
    assert m.value(P + "hold_ends_total", kind="locked", reason="released") == 1
    assert m.value(P + "hold_duration_seconds_count", kind="locked") == 2
    assert m.value(P + "resources", state="disabled", kind="static") == 1
    assert m.value(P + "resources", state="free", kind="static") == 2
    assert m.value(P + "resource_state", resource="b", state="disabled") == 1
    assert m.value(P + "store_commit_seconds_count") >= 5
    lock_route = "/api/resources/{id}/lock"
    assert m.value(P + "http_requests_total", endpoint=lock_route, status="409") == 1
    assert m.value(P + "http_requests_total", endpoint="/", method="POST", status="200") == 4
    assert m.value(P + "http_requests_total", endpoint="/api/resources/{id}", status="404") == 1
    assert m.value(P + "http_requests_total", endpoint="unmatched", status="404") == 1
    assert m.value(P + "info", version="0.1.0") == 1
    assert m.value(P + "start_time_seconds") > 0
    assert not any("zz" in str(s.labels) for s in m.samples)  # ids from clients make no series


def test_current_holds_have_an_age(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a"])
    assert agent.post("/api/resources/a/lock", {}).status == 200
    m = wait_for(
        lambda: (s := Scrape(agent)).value(P + "hold_age_seconds", resource="a") > 0.05 and s
    )
    assert m.value(P + "resource_state", resource="a", kind="static", state="locked") == 1


def test_provisioning_and_teardown_outcomes_and_durations(agent_factory: AgentFactory) -> None:
    session = {
        "kind": "static",
        "lock_wait": 10,
        "provision": [{"step": "command", "run": ["sh", "-c", "sleep 0.2"]}],
        "teardown": [{"step": "command", "run": ["sh", "-c", "exit 3"]}],
    }
    agent = agent_factory(resources=["a"], config={"session": [session]})
    locked = agent.post("/api/resources/a/lock", {})
    assert locked.status == 200, locked.body
    key = locked.json()["hold"]["key"]
    assert agent.post("/api/resources/a/release", {"key": key}).status == 200

    def ended() -> Scrape | None:
        s = Scrape(agent)
        return s if s.value(P + "sessions_total", phase="cleaning") == 1 else None

    m = wait_for(ended, what="the teardown to end")
    assert m.value(P + "sessions_total", phase="provisioning", outcome="ok") == 1
    assert m.value(P + "sessions_total", phase="cleaning", outcome="failed") == 1
    assert m.value(P + "session_duration_seconds_count", phase="provisioning") == 1
    assert m.value(P + "session_duration_seconds_sum", phase="provisioning") >= 0.2
    assert m.value(P + "session_duration_seconds_count", phase="cleaning") == 1
    assert m.value(P + "resources", state="unhealthy") == 1  # teardown failed: not free


def test_coordinator_requests_and_sync_lag(agent_factory: AgentFactory) -> None:
    with JenkinsServer(FakeJenkins([NODE])) as server:
        agent = agent_factory(
            resources=["a"], config={"agent": {"node": NODE}, "coordinator": [coordinator(server)]}
        )
        url = server.url
        # "in sync", not just healthy: while syncing, a change still waits (a lag above 0).
        state = P + "coordinator_state"
        m = wait_for(
            lambda: (s := Scrape(agent)).value(state, coordinator=url, state="in sync") == 1 and s
        )
        assert m.value(P + "coordinator_in_sync", coordinator=url) == 1
        assert m.value(P + "coordinator_requests_total", coordinator=url, result="ok") >= 2
        assert m.value(P + "coordinator_sync_lag_seconds", coordinator=url) == 0
        server.down()
        assert agent.post("/api/resources/a/disable", {}).status == 200
        m = wait_for(
            lambda: (
                (s := Scrape(agent)).value(
                    P + "coordinator_requests_total", coordinator=url, result="unreachable"
                )
                > 0
                and s.value(P + "coordinator_sync_lag_seconds", coordinator=url) > 0
                and s
            )
        )
        assert m.value(P + "coordinator_pending", coordinator=url) == 1
        assert m.value(P + "coordinator_in_sync", coordinator=url) == 0
        server.up()
        wait_for(lambda: Scrape(agent).value(P + "coordinator_sync_lag_seconds") == 0)


@pytest.mark.skipif(not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)")
def test_udev_events_are_counted(agent_factory: AgentFactory) -> None:
    with Testbed() as testbed:
        agent = agent_factory(udev=True, env=testbed.env)
        path = testbed.plug(testbed.controller(), 1, phone("METRIC1"))
        wait_for(lambda: Scrape(agent).value(P + "udev_events_total", action="add") >= 1)
        testbed.unplug(path)
        wait_for(lambda: Scrape(agent).value(P + "udev_events_total", action="remove") >= 1)
        m = Scrape(agent)
        assert m.value(P + "resources", state="absent", kind="android") == 1

"""No lock outlives its Jenkins build: the reaper asks the strict test Jenkins, as the agent
would ask a real one, with the coordinator's credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import CoordinatorSection
from agent.coordinator.reaper import Reaper
from agent.model import Description, EndReason, Holder, Kind, ResourceState
from tests.agentproc import AgentProcess
from tests.fakes.jenkins import READ, FakeJenkins, JenkinsServer, User
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.core import core_harness
from tests.support.holders import PERSON
from tests.support.net import free_port
from tests.support.waiting import wait_for


@pytest.fixture
def jenkins() -> Iterator[JenkinsServer]:
    users = {"agent": User("s3cret", frozenset({READ})), "other": User("x")}
    with JenkinsServer(FakeJenkins(["node"], users=users)) as server:
        yield server


def section(url: str, tmp_path: Path, token: str = "s3cret") -> CoordinatorSection:
    (tmp_path / "jenkins.token").write_text(token)
    return CoordinatorSection.model_validate(
        {"url": url, "user": "agent", "token_file": str(tmp_path / "jenkins.token"), "timeout": 2}
    )


async def test_a_finished_or_vanished_build_loses_its_lock_a_running_one_keeps_it(
    tmp_path: Path, jenkins: JenkinsServer
) -> None:
    fake = jenkins.jenkins
    fake.builds = {"job/phones/12/": False, "job/phones/13/": True, "job/f/job/g/7/": False}
    locks = {
        "done": Holder(jenkins.url, "job/phones/12/"),
        "running": Holder(jenkins.url, "job/phones/13/"),
        "deleted": Holder(jenkins.url, "job/phones/99/"),  # Jenkins answers 404
        "folder": Holder(jenkins.url, "job/f/job/g/7/"),
        "queue-item": Holder(jenkins.url, "job/phones/"),  # not a build: never asked
        "other-jenkins": Holder("http://elsewhere.example/", "job/phones/12/"),
        "person": PERSON,
    }
    async with core_harness(tmp_path) as core:
        keys = {}
        for rid, holder in locks.items():
            core.authority.describe(Description(rid, rid, Kind.STATIC))
            keys[rid] = (await core.authority.lock(rid, None, holder)).key
        reaper = Reaper(core.authority, [section(jenkins.url, tmp_path)], node="node", interval=60)
        released = await reaper.reap(older_than=None)
        assert sorted(released) == ["deleted", "done", "folder"]
        for rid in locks:
            expected = ResourceState.FREE if rid in released else ResourceState.LOCKED
            assert core.registry.get(rid).state is expected, rid
        [entry] = await core.authority.history("done", 1)
        assert entry.end_reason is EndReason.BUILD_ENDED
        asked = {r.path for r in fake.recorded() if r.path.endswith("api/json")}
        assert asked == {
            "/job/phones/12/api/json",
            "/job/phones/13/api/json",
            "/job/phones/99/api/json",
            "/job/f/job/g/7/api/json",
        }
        assert all(r.user == "agent" for r in fake.recorded())


async def test_only_locks_older_than_the_interval_are_asked_about_later(
    tmp_path: Path, jenkins: JenkinsServer
) -> None:
    jenkins.jenkins.builds = {"job/phones/12/": False}
    async with core_harness(tmp_path) as core:
        core.authority.describe(Description("r", "r", Kind.STATIC))
        await core.authority.lock("r", None, Holder(jenkins.url, "job/phones/12/"))
        reaper = Reaper(core.authority, [section(jenkins.url, tmp_path)], node="node", interval=60)
        assert await reaper.reap(older_than=60) == []  # taken just now
        assert jenkins.jenkins.recorded() == []
        assert await reaper.reap(older_than=0) == ["r"]


@pytest.mark.parametrize("trouble", ["unreachable", "bad token", "outage"])
async def test_a_jenkins_that_cannot_tell_changes_nothing(
    tmp_path: Path, jenkins: JenkinsServer, trouble: str
) -> None:
    jenkins.jenkins.builds = {"job/phones/12/": False}
    url = jenkins.url
    sec = section(url, tmp_path, token="wrong" if trouble == "bad token" else "s3cret")
    if trouble == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/"
        sec = sec.model_copy(update={"url": url})
    if trouble == "outage":
        jenkins.jenkins.outage.errors = True
    async with core_harness(tmp_path) as core:
        core.authority.describe(Description("r", "r", Kind.STATIC))
        await core.authority.lock("r", None, Holder(url, "job/phones/12/"))
        reaper = Reaper(core.authority, [sec], node="node", interval=60)
        assert await reaper.reap(older_than=None) == []
        assert core.registry.get("r").state is ResourceState.LOCKED


def test_the_agent_reaps_at_start_up(
    tmp_path: Path, jenkins: JenkinsServer, agent_factory: Callable[..., AgentProcess]
) -> None:
    fake = jenkins.jenkins
    fake.add_node("test-node")
    fake.builds = {"job/phones/12/": True}
    (tmp_path / "jenkins.token").write_text("s3cret")
    table = {"url": jenkins.url, "user": "agent", "token_file": str(tmp_path / "jenkins.token"),
             "node": "node", "retry_max": 0.5}  # fmt: skip
    agent = agent_factory(resources=["r"], config={"coordinator": [table]})
    client = JsonRpc4jClient(agent.url, jenkins=jenkins.url)
    key = client.reserve("r", 10, "job/phones/").key
    assert client.lock("r", key, "job/phones/12/").ok
    agent.kill()
    fake.builds["job/phones/12/"] = False  # the build ended while nobody listened
    agent.start()
    wait_for(lambda: agent.get("/api/resources/r")["state"] == "free", what="the reaper")
    assert "its build" in agent.log() and "no longer running" in agent.log()

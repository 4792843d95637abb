"""The circular clientInfo rule: a Jenkins' own holds are echoed back to it, and ignored.

docs/jenkins.md: the agent forwards every reserve, lock and
release to all coordinators with the ORIGINAL requester's clientInfo, so the
Jenkins that asked answers "Ignored" and keeps its own copy, and the others
mark the resource. The agent's real core drives two strict fake Jenkins
controllers in-process (tests/support/rig.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.model import Holder
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.support.rig import NODE, Rig, description
from tests.support.waiting import until


@pytest.fixture
def servers() -> Iterator[tuple[JenkinsServer, JenkinsServer]]:
    with JenkinsServer(FakeJenkins([NODE])) as a, JenkinsServer(FakeJenkins([NODE])) as b:
        yield a, b


async def test_lock_and_release_in_one_batch_are_echoed_to_the_jenkins_that_asked(
    tmp_path: Path, servers: tuple[JenkinsServer, JenkinsServer]
) -> None:
    a, b = servers
    task, build = Holder(a.url, "job/t/"), Holder(a.url, "job/t/7/")

    # A long batch window: the lock and the release below reach the sync together.
    sections = [{"url": s.url, "batch_window": 1.0} for s in servers]
    async with Rig(tmp_path, sections) as rig:
        auth = rig.authority
        auth.describe(description("r1"))
        hold = await auth.reserve("r1", 30, task)
        await until(
            lambda: all(s.jenkins.recorded("reserveResource") for s in servers),
            what="the reservation forwarded",
        )
        a.jenkins.set_internal(NODE, "r1", "reserved", task.url)  # Jenkins A's own record
        await auth.lock("r1", hold.key, build)
        await auth.release("r1", hold.key)
        await until(
            lambda: all(s.jenkins.recorded("releaseResource") for s in servers),
            what="the release forwarded",
        )
    # Jenkins A asked for all of it: everything about r1 comes back as its own and is
    # ignored -- even when it believed in the task's reservation, not the build's lock.
    echoes = [r for r in a.jenkins.recorded() if r.params.get("id") == "r1"]
    assert echoes and all(r.client_info["id"] == a.url for r in echoes), echoes
    assert all(r.answer["message"] == "Ignored" for r in echoes), echoes
    assert a.jenkins.resources(NODE)["r1"]["reserved"]["type"] == "INTERNAL"  # untouched
    # Jenkins B marked it as taken and clears it again.
    assert b.jenkins.recorded("releaseResource")[-1].client_info["id"] == a.url
    res_b = b.jenkins.resources(NODE)["r1"]
    assert res_b["reserved"] is None and res_b["locked"] is None

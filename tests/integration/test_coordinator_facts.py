"""Source facts and timers reach Jenkins: presence, health, expiry, storms, rejections.

These drive the agent's real core (store, registry, authority) in-process with
source facts -- what the udev and adb sources report -- and watch a strict
fake Jenkins. Only the fact source is the test; everything after it is the
agent's own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.model import Holder
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.support.rig import IDENTITY, NODE, Rig, description
from tests.support.waiting import until


@pytest.fixture
def server() -> Iterator[JenkinsServer]:
    with JenkinsServer(FakeJenkins([NODE])) as srv:
        yield srv


def enabled(server: JenkinsServer, rid: str) -> bool | None:
    res = server.jenkins.resources(NODE).get(rid)
    return None if res is None else bool(res["enabled"])


async def test_vanish_after_grace_and_health_changes_switch_availability(
    tmp_path: Path, server: JenkinsServer
) -> None:
    async with Rig(tmp_path, [{"url": server.url}], grace=0.3) as rig:
        auth = rig.authority
        auth.describe(description("phone", model="p"))
        await until(lambda: enabled(server, "phone") is True)
        # A reboot shorter than the grace period: Jenkins hears nothing.
        auth.vanish("phone")
        auth.describe(description("phone", model="p"))
        auth.vanish("phone")
        await until(lambda: enabled(server, "phone") is False, what="disabled after grace")
        auth.describe(description("phone", model="p"))
        await until(lambda: enabled(server, "phone") is True, what="enabled on return")
        auth.set_health("phone", "accept the USB debugging prompt on the phone")
        await until(lambda: enabled(server, "phone") is False, what="disabled when unhealthy")
        auth.set_health("phone", None)
        await until(lambda: enabled(server, "phone") is True)
        # An administrator's switch counts too.
        await auth.disable("phone", "screen cracked")
        auth.set_health("phone", "battery low")
        auth.set_health("phone", None)
        await until(lambda: rig.syncs[0].status().pending == 0)
        assert enabled(server, "phone") is False
    commands = [r.command for r in server.jenkins.recorded() if r.command != "get"]
    assert commands == ["update", "disable", "enable", "disable", "enable", "disable"]


async def test_expiries_are_forwarded(tmp_path: Path, server: JenkinsServer) -> None:
    jenkins_a = Holder("http://jenkins-a:8080/", "job/t/")

    async with Rig(tmp_path, [{"url": server.url}]) as rig:
        auth = rig.authority
        auth.describe(description("r1"))
        await auth.reserve("r1", 0.3, jenkins_a)
        await until(lambda: server.jenkins.recorded("reserveResource"))
        await until(lambda: server.jenkins.recorded("expireReservation"), what="expiry")
        hold = await auth.lock("r1", None, Holder(IDENTITY, "carol"), lease=0.3)
        await until(lambda: server.jenkins.recorded("lockResource"))
        await until(lambda: server.jenkins.recorded("releaseResource"), what="lease end")
        assert hold.key
        # Jenkins A locks; an administrator forces the lock off at the agent.
        await auth.lock("r1", None, jenkins_a)
        await until(lambda: len(server.jenkins.recorded("lockResource")) == 2)
        await auth.release("r1", None, force=True)
        await until(lambda: len(server.jenkins.recorded("releaseResource")) == 2)
    [expire] = server.jenkins.recorded("expireReservation")
    assert expire.params == {"node": NODE, "id": "r1"}
    lease_end, forced = server.jenkins.recorded("releaseResource")
    # A lease that ran out, or a forced release, is cleared on the agent's own
    # authority: even the Jenkins that held it must not ignore it.
    assert lease_end.client_info["id"] == forced.client_info["id"] == IDENTITY
    assert server.jenkins.recorded("lockResource")[1].client_info == {
        "id": jenkins_a.id, "url": jenkins_a.url}  # fmt: skip
    assert server.jenkins.resources(NODE)["r1"]["locked"] is None


async def test_a_storm_of_100_devices_costs_a_handful_of_requests(
    tmp_path: Path, server: JenkinsServer
) -> None:
    async with Rig(tmp_path, [{"url": server.url}]) as rig:
        await until(lambda: server.jenkins.recorded("get"))
        for i in range(100):
            rig.authority.describe(description(f"dev-{i:03d}", model="m", serial=str(i)))
        await until(lambda: len(server.jenkins.resources(NODE)) == 100, what="100 registered")
        adds = len(server.jenkins.recorded()) - 1
        # Then every device changes: an OS update, one metadata value dropped.
        for i in range(100):
            rig.authority.describe(description(f"dev-{i:03d}", model="m2"))
        await until(
            lambda: all(r["children"][0]["value"] == "m2"
                        for r in server.jenkins.resources(NODE).values()),
            what="100 updated",
        )  # fmt: skip
        changes = len(server.jenkins.recorded()) - 1 - adds
    assert adds <= 5 and changes <= 5, (adds, changes)
    updates = server.jenkins.recorded("update")
    # `enabled` goes with a new resource, never with a change to a known one.
    assert all(r["enabled"] is True for r in updates[0].data[0]["children"])
    assert all("enabled" not in r for r in updates[-1].data[0]["children"])
    for res in server.jenkins.resources(NODE).values():
        values = {c["name"]: c["value"] for c in res["children"]}
        assert values == {"model": "m2", "serial": ""} and res["enabled"] is True


async def test_a_rejected_resource_is_logged_not_retried_and_blocks_no_other(
    tmp_path: Path, server: JenkinsServer
) -> None:
    server.jenkins.reject_names.add("bad")

    async with Rig(tmp_path, [{"url": server.url}]) as rig:
        for rid in ("good-1", "bad", "good-2"):
            rig.authority.describe(description(rid))
        await until(lambda: {"good-1", "good-2"} <= set(server.jenkins.resources(NODE)))
        await until(lambda: rig.syncs[0].status().pending == 0)
        status = rig.syncs[0].status()
        assert status.last_error is not None
        assert "ERR_BAD_DATA" in status.last_error.message
        assert '"bad"' in status.last_error.message
        tries = len(server.jenkins.recorded("update"))
        # More changes elsewhere: the rejected document is not sent again...
        rig.authority.describe(description("good-1", model="x"))
        await until(lambda: len(server.jenkins.recorded("update")) == tries + 1)
        await until(lambda: rig.syncs[0].status().pending == 0)
        last = server.jenkins.recorded("update")[-1].data
        assert [r["id"] for r in last[0]["children"]] == ["good-1"]
        # ...until it changes, and Jenkins takes the new one.
        server.jenkins.reject_names.clear()
        rig.authority.describe(description("bad", model="fixed"))
        await until(lambda: "bad" in server.jenkins.resources(NODE))

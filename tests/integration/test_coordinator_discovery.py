"""Discovered devices reach Jenkins: udev (umockdev testbed) and adb (real server, fake phone).

The real agent process discovers devices through its real sources and keeps a
strict fake Jenkins in step: registration with the device's metadata, and
availability following health and presence (after the grace period).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.umockdev import Testbed, phone, umockdev_active
from tests.support.coordinator import NODE, coordinator, flat
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def jenkins() -> Iterator[JenkinsServer]:
    with JenkinsServer(FakeJenkins([NODE])) as server:
        yield server


def jenkins_resource(server: JenkinsServer, rid: str) -> dict[str, Any] | None:
    return server.jenkins.resources(NODE).get(rid)


def wait_enabled(server: JenkinsServer, rid: str, enabled: bool, what: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        res = jenkins_resource(server, rid)
        return res if res is not None and res["enabled"] is enabled else None

    found: dict[str, Any] = wait_for(probe, timeout=15, what=f"{rid} {what}")
    return found


@pytest.mark.skipif(not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)")
def test_usb_phones_are_registered_and_disabled_once_gone(
    agent_factory: Callable[..., AgentProcess], jenkins: JenkinsServer
) -> None:
    with Testbed() as testbed:
        root = testbed.controller()
        testbed.plug(root, 1, phone("COLD1"))
        agent_factory(
            udev=True,
            env=testbed.env,
            config={
                "agent": {"node": NODE, "grace_period": 0.5},
                "coordinator": [coordinator(jenkins)],
            },
        )
        cold = wait_enabled(jenkins, "COLD1", True, "registered from coldplug")
        assert flat(cold)["serial"] == "COLD1" and flat(cold)["product"] == "Pixel 7"
        assert cold["description"]
        path = testbed.plug(root, 2, phone("HOT1", product="Pixel 8"))
        hot = wait_enabled(jenkins, "HOT1", True, "registered on hotplug")
        assert flat(hot)["product"] == "Pixel 8"
        testbed.unplug(path)
        wait_enabled(jenkins, "HOT1", False, "disabled after the grace period")
        fastboot = testbed.plug(root, 3, phone("BOOT1", fastboot=True))
        wait_enabled(jenkins, "BOOT1", False, "registered disabled: in the bootloader")
        testbed.unplug(fastboot)
        assert jenkins_resource(jenkins, "COLD1")["enabled"] is True  # type: ignore[index]


def test_adb_phone_follows_its_health_to_jenkins(
    tmp_path_factory: pytest.TempPathFactory,
    agent_factory: Callable[..., AgentProcess],
    jenkins: JenkinsServer,
) -> None:
    with AdbServer(tmp_path_factory.mktemp("adb-home")) as adb:
        device = FakeAdbd(auth="refuse").start()
        try:
            adb.connect(device.serial, state="unauthorized")
            agent_factory(
                adb=True,
                config={
                    "agent": {"node": NODE, "grace_period": 0.5},
                    "adb": {"server": adb.address, "allow_remote": True},
                    "coordinator": [coordinator(jenkins)],
                },
            )
            res = wait_enabled(jenkins, device.serial, False, "registered, unauthorized")
            assert flat(res) == {"adb-state": "unauthorized"}
            device.authorize()
            res = wait_enabled(jenkins, device.serial, True, "enabled once authorized")
            values = flat(res)
            assert (values["model"], values["adb-state"]) == ("Pixel 7", "device")
            device.stop()
            adb.disconnect(device.serial)
            wait_enabled(jenkins, device.serial, False, "disabled after the grace period")
        finally:
            device.stop()

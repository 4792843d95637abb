"""One phone seen by udev and by adb is one resource, with both sets of facts.

A USB phone's adb serial is its USB serial. Here the "USB" half is a umockdev
device whose serial is the fake phone's adb serial (``127.0.0.1:PORT``, as
fake phones can only reach the real adb server over TCP), so the real udev
path and the real adb server meet in the agent's inventory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.fakes.umockdev import Testbed, phone, umockdev_active
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.skipif(not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)"),
    pytest.mark.timeout(60),
]


def _resource(agent: AgentProcess, rid: str) -> dict[str, Any] | None:
    resp = agent.request("GET", f"/api/resources/{rid}")
    if resp.status != 200:
        return None
    found: dict[str, Any] = resp.json()
    return found


def test_udev_and_adb_facts_share_one_resource(
    agent_factory: Callable[..., AgentProcess], adb_server: AdbServer
) -> None:
    with FakeAdbd().start() as adbd, Testbed() as testbed:
        adb_server.connect(adbd.serial)
        usb = testbed.plug(testbed.controller(), 2, phone(adbd.serial))
        agent = agent_factory(
            udev=True,
            adb=True,
            env=testbed.env,
            config={
                "agent": {"grace_period": 1.0},
                "adb": {"server": adb_server.address, "allow_remote": True},
            },
        )

        res = wait_for(
            lambda: (r := _resource(agent, adbd.serial)) and r["health"] is None and r,
            timeout=15,
            what="the phone usable with adb facts",
        )
        ids = [r["id"] for r in agent.get("/api/resources")["resources"]]
        assert ids == [adbd.serial], "udev and adb facts must not make two resources"
        metadata = res["metadata"]
        assert metadata["vendor-id"] == "18d1"  # from udev
        assert metadata["usb-port"]  # from udev
        assert metadata["model"] == "Pixel 7"  # from adb
        assert metadata["adb-state"] == "device"
        assert res["kind"] == "android"

        # Unplugged from USB but still listed by adb: still there, udev facts kept
        # only as long as udev sees the device.
        testbed.unplug(usb)
        gone_usb = wait_for(
            lambda: (r := _resource(agent, adbd.serial)) and "vendor-id" not in r["metadata"] and r,
            timeout=10,
            what="the udev facts withdrawn",
        )
        assert gone_usb["present"] is True
        assert gone_usb["metadata"]["model"] == "Pixel 7"

        # Gone from adb too: absent at once, gone after the grace period.
        adbd.stop()
        adb_server.disconnect(adbd.serial)
        wait_for(
            lambda: (r := _resource(agent, adbd.serial)) and r["gone"],
            timeout=15,
            what="the phone reported gone",
        )

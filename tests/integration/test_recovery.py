"""A stuck phone heals itself: the recovery ladder against umockdev's USB tree and fake phones.

Each phone is two halves, as in test_usb_adb_merge: a umockdev USB device (behind
a fake hub) whose serial is a fake phone's adb serial, so udev and the real adb
server describe one resource. "Stuck" is a phone whose shell never answers; the
tests decide which rung heals it, watch the sysfs switches the agent writes (in
the testbed's files), and replay what the kernel would do: an unplug and a plug.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.fakes.umockdev import Testbed, hub, phone, umockdev_active
from tests.support.scrape import Scrape
from tests.support.waiting import wait_for

RECOVERIES = "resource_agent_recoveries_total"

pytestmark = [
    pytest.mark.skipif(not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)"),
    pytest.mark.timeout(90),
]

RECOVERY = {"offline_after": 1, "settle": 1.5, "backoff": 0.1, "probe_timeout": 0.5}


@dataclass
class Lab:
    """A hub on the testbed's root hub, phones on its ports, and the agent watching."""

    testbed: Testbed
    adb: AdbServer
    agent_factory: Callable[..., AgentProcess]
    hub: str = ""
    phones: dict[str, FakeAdbd] = field(default_factory=dict)
    usb: dict[str, str] = field(default_factory=dict)  # serial -> syspath
    ports: dict[str, int] = field(default_factory=dict)  # serial -> hub port
    agent: AgentProcess | None = None

    def plug(self, port: int) -> str:
        fake = FakeAdbd().start()
        self.adb.connect(fake.serial)
        self.phones[fake.serial] = fake
        self.ports[fake.serial] = port
        self.usb[fake.serial] = self.testbed.plug(self.hub, port, phone(fake.serial))
        return fake.serial

    def replug(self, serial: str) -> None:
        """What the kernel does after a replug or a power cycle: the device goes and comes."""
        self.testbed.unplug(self.usb[serial])
        self.usb[serial] = self.testbed.plug(self.hub, self.ports[serial], phone(serial))

    def start(self, **recovery: Any) -> AgentProcess:
        self.agent = self.agent_factory(
            udev=True,
            adb=True,
            env=self.testbed.env,
            config={
                "agent": {"grace_period": 30},
                "adb": {"server": self.adb.address, "allow_remote": True},
                "recovery": {**RECOVERY, **recovery},
            },
        )
        for serial in self.phones:
            self.wait_state(serial, "free")
        return self.agent

    def wait_state(self, serial: str, state: str) -> None:
        wait_for(lambda: self.state(serial) == state, timeout=20, what=f"{serial} {state}")

    def state(self, serial: str) -> str | None:
        assert self.agent is not None
        resp = self.agent.request("GET", f"/api/resources/{serial}")
        return str(resp.json()["state"]) if resp.status == 200 else None

    def recover(self, serial: str) -> dict[str, Any]:
        assert self.agent is not None
        resp = self.agent.request("POST", f"/api/resources/{serial}/recover", {}, timeout=60)
        assert resp.status == 200, resp.body
        answer: dict[str, Any] = resp.json()
        return answer


@pytest.fixture
def lab(adb_server: AdbServer, agent_factory: Callable[..., AgentProcess]) -> Iterator[Lab]:
    with Testbed() as testbed:
        lab = Lab(testbed, adb_server, agent_factory)
        lab.hub = testbed.plug(testbed.controller(), 2, hub())
        yield lab
        for fake in lab.phones.values():
            fake.stop()
            adb_server.disconnect(fake.serial)


class Switch(threading.Thread):
    """Watches a sysfs switch the agent writes, and runs ``then`` once it went off and on."""

    def __init__(self, path: Path, off: str, on: str, then: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.path, self.off, self.on, self.then = path, off, on, then
        self.seen: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            try:
                # Empty: caught between the writer's truncate and its write (the
                # testbed's attribute is a plain file); the agent never writes ''.
                value = self.path.read_text().strip() or None
            except OSError:
                value = None
            if value is not None and (not self.seen or self.seen[-1] != value):
                self.seen.append(value)
            if self.seen[-2:] == [self.off, self.on]:
                self.then()
                return
            if self._done.wait(0.02):
                return

    def __enter__(self) -> Switch:
        self.start()
        wait_for(lambda: self.seen, timeout=5, what=f"{self.path} read")
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join(5)


def authorized(lab: Lab, serial: str, then: Callable[[], None]) -> Switch:
    return Switch(lab.testbed.sysfs(lab.usb[serial], "authorized"), "0", "1", then)


def test_a_stuck_phone_is_brought_back_by_reconnect(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start()
    fake = lab.phones[serial]
    fake.shell_mode, fake.heal_on_reconnect = "hang", True
    with authorized(lab, serial, lambda: None) as switch:
        answer = lab.recover(serial)
    assert answer["recovered"] is True and answer["resource"]["state"] == "free"
    assert fake.connects >= 2  # adb made its connection to the phone again
    assert switch.seen == ["1"], "the gentlest rung sufficed: no replug"
    assert "recovery reconnect: recovered" in agent.log()


def test_a_phone_that_needs_a_soft_replug(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start()
    fake = lab.phones[serial]
    fake.shell_mode = "hang"

    def kernel() -> None:
        fake.shell_mode = "normal"
        lab.replug(serial)

    with authorized(lab, serial, kernel) as switch:
        answer = lab.recover(serial)
    assert switch.seen == ["1", "0", "1"]
    assert answer["recovered"] is True, agent.log()
    log = agent.log()
    assert "recovery reconnect: failed" in log and "recovery soft replug: recovered" in log
    # Every rung is in the metrics, the history and the audit trail.
    m = Scrape(agent)
    assert m.value(RECOVERIES, rung="reconnect", outcome="failed") == 1
    assert m.value(RECOVERIES, rung="soft replug", outcome="recovered") == 1
    assert m.value(RECOVERIES, rung="power cycle") == 0
    history = agent.get(f"/api/resources/{serial}/history")["actions"]
    rungs = [a["detail"].split(":")[0] for a in history if a["action"] == "recover"]
    assert rungs == ["soft replug", "reconnect"]  # newest first
    assert f"action=recover resource={serial}" in agent.wait_log("agent.audit: action=recover")


def test_a_phone_that_needs_its_port_power_cycled(lab: Lab) -> None:
    serial = lab.plug(3)
    port = lab.testbed.port_switch(lab.hub, 3)
    agent = lab.start()
    fake = lab.phones[serial]
    fake.shell_mode = "hang"

    def power() -> None:
        fake.shell_mode = "normal"
        lab.replug(serial)

    with authorized(lab, serial, lambda: None), Switch(port, "1", "0", power) as switch:
        answer = lab.recover(serial)
    assert switch.seen == ["0", "1", "0"]
    assert answer["recovered"] is True
    assert "recovery power cycle: recovered" in agent.log()


def test_a_phone_that_never_comes_back_is_quarantined(lab: Lab) -> None:
    serial = lab.plug(3)
    lab.testbed.port_switch(lab.hub, 3)
    agent = lab.start()
    lab.phones[serial].shell_mode = "hang"
    answer = lab.recover(serial)
    assert answer["recovered"] is False
    res = answer["resource"]
    assert res["state"] == "quarantined" and res["enabled"] is True
    assert res["fault"]["kind"] == "quarantined", res
    assert "power cycle: failed" in res["fault"]["reason"], res
    refused = agent.request("POST", f"/api/resources/{serial}/lock", {})
    assert refused.status == 409 and refused.json()["error"]["code"] == 12
    # An administrator's word clears it.
    lab.phones[serial].shell_mode = "normal"
    agent.post(f"/api/resources/{serial}/enable", {})
    assert agent.get(f"/api/resources/{serial}")["fault"] is None
    lab.wait_state(serial, "free")


def test_a_locked_neighbour_on_the_hub_stops_the_power_cycle(lab: Lab) -> None:
    stuck, neighbour = lab.plug(3), lab.plug(4)
    port = lab.testbed.port_switch(lab.hub, 3)
    agent = lab.start()
    agent.post(f"/api/resources/{neighbour}/lock", {"holder": "a build"})
    lab.phones[stuck].shell_mode = "hang"
    with Switch(port, "1", "0", lambda: None) as switch:
        answer = lab.recover(stuck)
    assert switch.seen == ["0"], "the port was never switched off"
    assert answer["resource"]["state"] == "quarantined"
    assert f"{neighbour} on the same hub is locked" in answer["resource"]["fault"]["reason"]
    assert lab.state(neighbour) == "locked"


def test_at_most_max_per_hour_ladders_then_quarantine(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start(max_per_hour=2)
    fake = lab.phones[serial]
    for _ in range(2):
        fake.shell_mode, fake.heal_on_reconnect = "hang", True
        assert lab.recover(serial)["recovered"] is True
    fake.shell_mode = "hang"
    answer = lab.recover(serial)
    assert answer["recovered"] is False and answer["resource"]["state"] == "quarantined"
    assert "2 recoveries in the last hour" in answer["resource"]["fault"]["reason"]
    assert agent.log().count("trying to bring it back") == 2


def test_a_held_phone_is_left_alone_unless_its_session_asks(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start()
    key = agent.post(f"/api/resources/{serial}/lock", {"holder": "a build"}).json()["hold"]["key"]
    lab.phones[serial].shell_mode = "hang"
    answer = lab.recover(serial)
    assert answer["recovered"] is False and answer["resource"]["state"] == "locked"
    assert "recovery not tried: it is locked by a build" in agent.log()
    agent.post(f"/api/resources/{serial}/release", {"key": key})


def test_a_hold_survives_the_whole_ladder_its_session_asked_for(lab: Lab) -> None:
    serial = lab.plug(3)
    lab.testbed.port_switch(lab.hub, 3)
    agent = lab.start()
    agent.configure(
        {
            "session": [
                {"kind": "android", "provision": [{"step": "battery", "min": 10, "timeout": 2}]}
            ]
        }
    )
    agent.restart()
    lab.wait_state(serial, "free")
    fake = lab.phones[serial]
    fake.shell_mode = "hang"

    def power() -> None:
        fake.shell_mode = "normal"
        lab.replug(serial)

    port = lab.testbed.sysfs(lab.hub, "1-2:1.0", "1-2-port3", "disable")
    with Switch(port, "1", "0", power):
        resp = agent.request("POST", f"/api/resources/{serial}/lock", {"holder": "a build"},
                             timeout=60)  # fmt: skip
    # The battery step found the phone stuck; the session asked for the ladder, which went
    # all the way to the power cycle (the phone vanished and came back); the step ran again.
    assert resp.status == 200, resp.body
    taken = resp.json()
    assert taken["resource"]["state"] == "locked"
    assert taken["hold"]["holder"]["url"] == "a build"
    log = agent.request("GET", f"/api/sessions/{taken['session']}/log").body.decode()
    assert "recovery power cycle: recovered" in log and "step battery: ok" in log


def test_a_shell_that_stops_answering_starts_the_ladder_by_itself(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start()
    agent.configure({"adb": {"battery_interval": 0.5, "read_timeout": 1}})
    agent.restart()
    lab.wait_state(serial, "free")
    fake = lab.phones[serial]
    fake.shell_mode, fake.heal_on_reconnect = "hang", True
    # The adb source's next battery read times out, and says the phone is stuck.
    agent.wait_log("recovery reconnect: recovered", timeout=30)
    assert "its shell did not answer" in agent.log()
    lab.wait_state(serial, "free")


def test_recovery_switched_off_tries_nothing(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start(enabled=False)
    lab.phones[serial].shell_mode = "hang"
    with authorized(lab, serial, lambda: None) as switch:
        answer = lab.recover(serial)
    assert answer["recovered"] is False and answer["resource"]["fault"] is None
    assert "recovery not tried: [recovery] enabled = false" in agent.log()
    assert switch.seen == ["1"]


def test_the_cli_climbs_the_ladder(lab: Lab) -> None:
    serial = lab.plug(3)
    agent = lab.start()
    fake = lab.phones[serial]
    fake.shell_mode, fake.heal_on_reconnect = "hang", True
    env = {**os.environ, "RESOURCE_AGENT_URL": agent.url}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "recover", serial],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.strip() == f"{serial} is back (free)"

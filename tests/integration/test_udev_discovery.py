"""USB discovery end to end: fake devices in a umockdev testbed, the real agent process.

The agent runs with ``UMOCKDEV_DIR`` pointing at the testbed, so its pyudev
sees the fake sysfs through the real libudev and receives real uevents.
``[adb] enabled = false``: phones are healthy without an adb server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.umockdev import (
    Testbed,
    hub,
    keyboard,
    mass_storage,
    phone,
    umockdev_active,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)"
)

GRACE = 1.0
ROOT_PORT = "pci-0000:00:14.0-usb-0:"

StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


@pytest.fixture
def start_agent(agent_factory: Callable[..., AgentProcess], testbed: Testbed) -> StartAgent:
    """Start an agent on the testbed with udev on, adb off and a 1 s grace period."""

    def start(**kwargs: Any) -> AgentProcess:
        config = {"agent": {"grace_period": GRACE}} | kwargs.pop("config", {})
        return agent_factory(udev=True, adb=False, env=testbed.env, config=config, **kwargs)

    return start


def resources(agent: AgentProcess) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in agent.get("/api/resources")["resources"]}


def wait_resource(
    agent: AgentProcess, rid: str, what: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        res = resources(agent).get(rid)
        return res if res is not None and check(res) else None

    found: dict[str, Any] = wait_for(probe, timeout=10, what=f"{rid} {what}")
    return found


def test_coldplug_lists_phones_and_ignores_hubs_keyboards_and_sticks(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    testbed.plug(root, 1, phone("PHONE1"))
    testbed.plug(root, 2, phone("BOOT1", fastboot=True))
    hub_path = testbed.plug(root, 3, hub())
    testbed.plug(hub_path, 1, keyboard())
    testbed.plug(hub_path, 2, mass_storage("STICK1"))
    testbed.plug(hub_path, 3, phone("PHONE2", product="Pixel 8"))

    agent = start_agent()
    # Coldplug happens before the listener binds: the first answer is complete.
    found = resources(agent)
    assert set(found) == {"PHONE1", "BOOT1", "PHONE2"}
    first = found["PHONE1"]
    assert first["kind"] == "android"
    assert first["state"] == "free"
    assert first["name"] == "Google Pixel 7"
    assert first["metadata"] == {
        "vendor-id": "18d1",
        "product-id": "4ee7",
        "manufacturer": "Google",
        "product": "Pixel 7",
        "serial": "PHONE1",
        "usb-port": ROOT_PORT + "1",
    }
    assert found["PHONE2"]["metadata"]["usb-port"] == ROOT_PORT + "3.3"
    assert found["BOOT1"]["state"] == "unhealthy"
    assert found["BOOT1"]["health"] == "the phone is in the bootloader (fastboot)"


def test_hotplug_add_and_remove_then_gone_after_the_grace_period(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    agent = start_agent()
    assert resources(agent) == {}

    hub_path = testbed.plug(root, 4, hub())
    testbed.plug(hub_path, 1, keyboard())
    path = testbed.plug(hub_path, 2, phone("HOT1"))
    res = wait_resource(agent, "HOT1", "listed", lambda r: r["present"])
    assert res["state"] == "free"
    assert res["metadata"]["usb-port"] == ROOT_PORT + "4.2"
    assert set(resources(agent)) == {"HOT1"}  # the hub and keyboard events came first

    testbed.unplug(path)
    res = wait_resource(agent, "HOT1", "absent", lambda r: not r["present"])
    assert res["state"] == "absent"
    assert not res["gone"]
    wait_resource(agent, "HOT1", "gone", lambda r: r["gone"])


def test_held_phone_vanishing_and_returning_within_grace_stays_held(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    path = testbed.plug(root, 1, phone("HELD1"))
    agent = start_agent()
    locked = agent.post("/api/resources/HELD1/lock", {"holder": "test"})
    assert locked.status == 200, locked.body

    testbed.unplug(path)
    res = wait_resource(agent, "HELD1", "absent", lambda r: not r["present"])
    assert res["state"] == "locked"  # the hold outlives the absence
    path = testbed.plug(root, 1, phone("HELD1", product="Pixel 7 Pro"))
    res = wait_resource(agent, "HELD1", "back", lambda r: r["present"])
    assert res["state"] == "locked"
    assert res["holder"]["holder"]["url"] == "test"
    assert res["metadata"]["product"] == "Pixel 7 Pro"  # changed metadata does come through
    # A return within the grace period is no event: the deadline passes without "gone".
    time.sleep(GRACE + 0.5)
    res = resources(agent)["HELD1"]
    assert (res["present"], res["gone"], res["state"]) == (True, False, "locked")


def test_replug_after_the_grace_period_brings_a_gone_phone_back(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    path = testbed.plug(root, 1, phone("LATE1"))
    agent = start_agent()
    assert agent.post("/api/resources/LATE1/lock", {"holder": "test"}).status == 200

    testbed.unplug(path)
    res = wait_resource(agent, "LATE1", "gone", lambda r: r["gone"])
    assert not res["present"]
    testbed.plug(root, 1, phone("LATE1"))
    res = wait_resource(agent, "LATE1", "back", lambda r: r["present"] and not r["gone"])
    assert res["state"] == "locked"  # the hold was never dropped


def test_duplicate_serials_are_named_by_port_until_unique_again(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    first = testbed.plug(root, 1, phone("0123456789ABCDEF"))
    agent = start_agent()
    wait_resource(agent, "0123456789ABCDEF", "listed", lambda r: r["present"])

    testbed.plug(root, 2, phone("0123456789ABCDEF"))
    one, two = f"usb-{ROOT_PORT}1", f"usb-{ROOT_PORT}2"
    wait_for(lambda: {one, two} <= set(resources(agent)), what="both phones named by port")
    found = resources(agent)
    assert found[one]["present"] and found[two]["present"]
    assert not found["0123456789ABCDEF"]["present"]  # the serial no longer names one device
    assert "report the serial 0123456789ABCDEF" in agent.log()

    testbed.unplug(first)
    wait_resource(agent, "0123456789ABCDEF", "unique again", lambda r: r["present"])
    res = resources(agent)["0123456789ABCDEF"]
    assert res["metadata"]["usb-port"] == ROOT_PORT + "2"
    assert not resources(agent)[two]["present"]


def test_custom_rule_with_an_ancestor_match(testbed: Testbed, start_agent: StartAgent) -> None:
    root = testbed.controller()
    rack_hub = testbed.plug(root, 3, hub())
    testbed.plug(rack_hub, 2, mass_storage("STICK-IN-RACK"))
    testbed.plug(root, 4, mass_storage("STICK-LOOSE"))  # same stick, not under that hub
    rules = [
        {
            "kind": "usb",
            "when": {"ID_VENDOR_ID": "0781", "@ID_PATH": "*-usb-0:3", "@ATTR{product}": "*Hub"},
            "name": "stick {ID_SERIAL_SHORT}",
            "description": "{manufacturer} stick in slot {usb-port}",
            "metadata": {"rack": "A", "slot": "{usb-port}"},
        },
        {"kind": "ignore", "when": {"ID_SERIAL_SHORT": "IGNORED*"}},
    ]
    agent = start_agent(config={"match": rules})
    testbed.plug(rack_hub, 1, phone("IGNORED-PHONE"))
    testbed.plug(rack_hub, 3, phone("SEEN-PHONE"))
    wait_resource(agent, "SEEN-PHONE", "listed", lambda r: r["present"])

    found = resources(agent)
    assert set(found) == {"STICK-IN-RACK", "SEEN-PHONE"}
    stick = found["STICK-IN-RACK"]
    assert stick["kind"] == "usb"
    assert stick["name"] == "stick STICK-IN-RACK"
    assert stick["description"] == f"SanDisk stick in slot {ROOT_PORT}3.2"
    assert stick["metadata"]["rack"] == "A"
    assert stick["metadata"]["slot"] == ROOT_PORT + "3.2"
    assert stick["metadata"]["vendor-id"] == "0781"


def test_without_id_path_the_port_comes_from_the_sysfs_path_and_pyusb_gaps_are_logged(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    agent = start_agent()
    bare = phone(None)  # no serial: named by its port
    bare_attrs = {k: v for k, v in bare.attrs.items() if k not in ("manufacturer", "product")}
    bare_props = {k: v for k, v in bare.props.items() if not k.endswith("_ENC")}
    hub_path = testbed.plug(root, 2, hub(), id_path=False)
    testbed.plug(hub_path, 3, type(bare)(bare_attrs, bare_props), id_path=False)

    res = wait_resource(agent, "usb-1-2.3", "listed", lambda r: r["present"])
    assert res["metadata"]["usb-port"] == "1-2.3"
    assert res["name"] == "USB device 18d1:4ee7"
    # udev lacked the strings, libusb cannot read a fake device: logged, and the agent goes on.
    wait_for(lambda: "using what udev knows" in agent.log(), what="the pyusb warning")
    assert agent.running()
    assert resources(agent)["usb-1-2.3"]["present"]


def test_a_change_event_updates_the_health(testbed: Testbed, start_agent: StartAgent) -> None:
    root = testbed.controller()
    path = testbed.plug(root, 1, phone("CHG1"))
    agent = start_agent()
    assert resources(agent)["CHG1"]["health"] is None
    testbed.change(path, {"ID_USB_INTERFACES": ":ff4203:"})
    wait_resource(agent, "CHG1", "in fastboot", lambda r: r["health"] is not None)
    testbed.change(path, {"ID_USB_INTERFACES": ":ff4201:"})
    wait_resource(agent, "CHG1", "healthy again", lambda r: r["health"] is None)


def test_a_hub_bringing_many_phones_at_once(testbed: Testbed, start_agent: StartAgent) -> None:
    root = testbed.controller()
    agent = start_agent()
    hubs = [testbed.plug(root, port, hub()) for port in (1, 2, 3)]
    serials = {f"STORM{i:02d}" for i in range(30)}
    for i, serial in enumerate(sorted(serials)):
        testbed.plug(hubs[i // 10], i % 10 + 1, phone(serial))
    wait_for(
        lambda: {r for r, v in resources(agent).items() if v["present"]} == serials,
        what="all 30 phones listed",
    )
    for path in hubs:  # unplugging a hub unplugs everything behind it
        testbed.unplug(path)
    wait_for(
        lambda: not any(v["present"] for v in resources(agent).values()),
        what="all 30 phones absent",
    )


def test_a_restarted_agent_finds_its_held_phone_by_coldplug(
    testbed: Testbed, start_agent: StartAgent
) -> None:
    root = testbed.controller()
    testbed.plug(root, 1, phone("KEPT1"))
    left = testbed.plug(root, 2, phone("LEFT1"))
    agent = start_agent()
    assert agent.post("/api/resources/KEPT1/lock", {"holder": "test"}).status == 200

    assert agent.terminate() == 0
    testbed.unplug(left)  # unplugged while the agent was down
    agent.start()
    # Coldplug ran before the listener: the first answer already has the phone present.
    found = resources(agent)
    assert (found["KEPT1"]["present"], found["KEPT1"]["state"]) == (True, "locked")
    assert not found["LEFT1"]["present"]
    wait_resource(agent, "LEFT1", "gone", lambda r: r["gone"])
    assert resources(agent)["KEPT1"]["state"] == "locked"

"""The agent process with the real adb server and fake phones over TCP.

One private adb server serves the module (its own port and HOME; never the
default 5037); tests that kill it use one of their own. Fake phones connect
with ``adb connect``, so their serials are ``127.0.0.1:PORT`` and most agents
here run with ``[adb] allow_remote = true``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.discovery.inventory import ADB_HEALTH
from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import DEFAULT_PROPS, FakeAdbd
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

EXPECTED_METADATA = {
    "manufacturer": "Google",
    "model": "Pixel 7",
    "device": "panther",
    "android-release": "14",
    "sdk": "34",
    "abi": "arm64-v8a",
    "fingerprint": DEFAULT_PROPS["ro.build.fingerprint"],
    "battery": "85",
    "adb-state": "device",
}

AgentFactory = Callable[..., AgentProcess]


def adb_agent(
    factory: AgentFactory, server: AdbServer | str, allow_remote: bool = True, **adb: Any
) -> AgentProcess:
    """An agent following ``server`` (udev off)."""
    address = server if isinstance(server, str) else server.address
    section = {"server": address, "allow_remote": allow_remote, **adb}
    return factory(adb=True, config={"udev": {"enabled": False}, "adb": section})


def resource(agent: AgentProcess, rid: str) -> dict[str, Any] | None:
    """The resource as the API shows it, or None when it is not listed."""
    resp = agent.request("GET", f"/api/resources/{rid}")
    if resp.status == 404:
        return None
    assert resp.status == 200, resp.body
    found: dict[str, Any] = resp.json()
    return found


def wait_resource(
    agent: AgentProcess, rid: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll the API until the resource exists and passes ``check``."""

    def ok() -> dict[str, Any] | None:
        res = resource(agent, rid)
        return res if res is not None and check(res) else None

    try:
        found: dict[str, Any] = wait_for(ok, timeout=15, what=f"{rid}: {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nnow: {resource(agent, rid)}\n{agent.log_tail()}") from None
    return found


def test_phone_is_described_by_its_props_and_battery_refreshes(
    agent_factory: AgentFactory, adb_server: AdbServer, phones: Callable[..., FakeAdbd]
) -> None:
    phone = phones()
    adb_server.connect(phone.serial)
    agent = adb_agent(agent_factory, adb_server, battery_interval=0.2)

    # start() reads the first list and its phones before the API listens.
    res = resource(agent, phone.serial)
    assert res is not None, agent.log_tail()
    assert res["metadata"] == EXPECTED_METADATA
    assert (res["name"], res["kind"], res["state"], res["health"]) == (
        "Google Pixel 7",
        "android",
        "free",
        None,
    )

    phone.battery = 42
    wait_resource(agent, phone.serial, lambda r: r["metadata"]["battery"] == "42", "battery 42")
    reserved = agent.post(f"/api/resources/{phone.serial}/reserve", {"timeout": 60})
    assert reserved.status == 200, reserved.body


def test_unauthorized_phone_is_shown_unusable_until_allowed(
    agent_factory: AgentFactory, adb_server: AdbServer, phones: Callable[..., FakeAdbd]
) -> None:
    phone = phones(auth="refuse")
    adb_server.connect(phone.serial, state="unauthorized")
    agent = adb_agent(agent_factory, adb_server)

    res = resource(agent, phone.serial)
    assert res is not None, agent.log_tail()
    assert res["state"] == "unhealthy"
    assert (
        res["health"]
        == ADB_HEALTH["unauthorized"]
        == ("accept the USB debugging prompt on the phone")
    )
    assert res["metadata"] == {"adb-state": "unauthorized"}
    refused = agent.post(f"/api/resources/{phone.serial}/reserve", {"timeout": 60})
    assert refused.status == 409
    assert refused.json()["error"]["code"] == Code.UNHEALTHY

    phone.authorize()
    res = wait_resource(agent, phone.serial, lambda r: r["health"] is None, "authorized")
    assert res["metadata"] == EXPECTED_METADATA
    assert agent.post(f"/api/resources/{phone.serial}/reserve", {"timeout": 60}).status == 200


def test_recovery_sideload_and_bootloader_are_shown_with_their_reason(
    agent_factory: AgentFactory, adb_server: AdbServer, phones: Callable[..., FakeAdbd]
) -> None:
    modes = ("recovery", "sideload", "bootloader")
    listed = {mode: phones(mode=mode) for mode in modes}
    for phone in listed.values():
        adb_server.connect(phone.serial, state=phone.mode)
    agent = adb_agent(agent_factory, adb_server)

    for mode, phone in listed.items():
        res = resource(agent, phone.serial)
        assert res is not None, agent.log_tail()
        assert (res["state"], res["health"]) == ("unhealthy", ADB_HEALTH[mode])
        assert res["metadata"] == {"adb-state": mode}
        refused = agent.post(f"/api/resources/{phone.serial}/reserve", {"timeout": 60})
        assert refused.json()["error"]["code"] == Code.UNHEALTHY


def test_offline_phone_keeps_its_hold_and_is_absent_once_disconnected(
    agent_factory: AgentFactory, adb_server: AdbServer, phones: Callable[..., FakeAdbd]
) -> None:
    phone = phones()
    adb_server.connect(phone.serial)
    agent = adb_agent(agent_factory, adb_server, battery_interval=0.2)
    reserved = agent.post(f"/api/resources/{phone.serial}/reserve", {"timeout": 600})
    assert reserved.status == 200, reserved.body

    phone.stop()  # the phone dies; adb lists it offline until it is disconnected
    res = wait_resource(
        agent, phone.serial, lambda r: r["metadata"]["adb-state"] == "offline", "offline"
    )
    assert res["health"] == ADB_HEALTH["offline"]
    assert res["present"] is True
    assert res["holder"] is not None and res["state"] == "reserved"
    assert res["metadata"]["model"] == "Pixel 7"  # last known facts stay

    adb_server.disconnect(phone.serial)
    res = wait_resource(agent, phone.serial, lambda r: r["present"] is False, "absent")
    assert res["state"] == "reserved" and res["gone"] is False  # hold kept in the grace period


def test_tcp_phone_is_ignored_without_allow_remote(
    agent_factory: AgentFactory, adb_server: AdbServer, phones: Callable[..., FakeAdbd]
) -> None:
    phone = phones()
    adb_server.connect(phone.serial)
    agent = adb_agent(agent_factory, adb_server, allow_remote=False)

    # The API listens only after the first device list was applied.
    assert agent.get("/api/resources")["resources"] == []
    assert f"ignoring {phone.serial}: adb over TCP needs [adb] allow_remote" in agent.log()


def test_adb_server_restart_neither_doubles_nor_loses_phones(
    agent_factory: AgentFactory, tmp_path: Path, phones: Callable[..., FakeAdbd]
) -> None:
    server = AdbServer(tmp_path / "adb-home")
    # The agent starts first: no server yet must not hold up its start.
    agent = adb_agent(agent_factory, server.address)
    assert agent.get("/api/resources")["resources"] == []
    assert f"no server at {server.address}" in agent.log()

    phone = phones()
    with server:
        server.connect(phone.serial)
        wait_resource(agent, phone.serial, lambda r: r["health"] is None, "usable")
        reserved = agent.post(f"/api/resources/{phone.serial}/reserve", {"timeout": 600})
        assert reserved.status == 200, reserved.body

        server.kill()
        res = wait_resource(agent, phone.serial, lambda r: not r["present"], "absent")
        assert res["state"] == "reserved"
        assert f"lost the server at {server.address}" in agent.log()

        server.start()
        server.connect(phone.serial)  # a new server forgets adb connect
        res = wait_resource(
            agent, phone.serial, lambda r: r["present"] and r["health"] is None, "back"
        )
        assert res["state"] == "reserved" and res["metadata"] == EXPECTED_METADATA
        ids = [r["id"] for r in agent.get("/api/resources")["resources"]]
        assert ids == [phone.serial]
        assert f"the server at {server.address} answers again" in agent.log()
        server.disconnect(phone.serial)

"""The installed service under a real systemd, as a lab administrator would run it.

This machine's own OS boots in a container (tests/support/container.py); the
checkout's committed HEAD is cloned into it and installed with ``make
install``; the agent is configured with the strict test Jenkins (running here,
on the loopback the container shares), its API token handed over by
``LoadCredential=``, and one static resource. Then: both units run, READY came
and STATUS is current, the token was accepted at Jenkins and the resource
registered, a JSON-RPC Lock holds, the watchdog restarts an agent frozen with
SIGSTOP and the lock survives, ``systemctl stop`` is clean, and ``make
uninstall`` leaves no unit behind. Nothing stays mounted or running after it,
pass or fail.

Needs root and systemd-nspawn (``make test`` installs systemd-container); it
runs alone with ``umockdev-wrapper .venv/bin/python -m pytest -s tests/system``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import http_request
from tests.fakes.jenkins import FakeJenkins, JenkinsServer, User
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.container import Container, booted, hidden_from_overlay
from tests.support.net import free_port
from tests.support.tomlfile import to_toml
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(os.geteuid() != 0, reason="boots a container: needs root"),
    pytest.mark.skipif(
        shutil.which("systemd-nspawn") is None, reason="needs systemd-nspawn (systemd-container)"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "/root/resource-agent"  # the clone inside
NODE = "box-7"
TREE = "external-resources"
RESOURCE = "bench-psu"
BUILD = "job/phone-tests/12/"
UNITS = ("resource-agent-adb.service", "resource-agent.service")
WATCHDOG = 2  # seconds, set by a runtime drop-in (shipped: 30)


@pytest.fixture
def jenkins() -> Iterator[JenkinsServer]:
    """The strict test Jenkins with the node, its TreeNode and a running build."""
    users = {"agent": User(secrets.token_hex(16))}
    fake = FakeJenkins([NODE], users)
    fake.add_treenode(NODE, TREE)
    fake.builds = {BUILD: True}  # the reaper keeps the build's lock
    with JenkinsServer(fake) as server:
        yield server


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Container]:
    """The booted container; pip inside is configured as it is here."""
    common = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pip = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    binds = hidden_from_overlay([ROOT, Path(common)])
    with booted(tmp_path / "nspawn.log", env=pip, binds=binds) as container:
        yield container


class Clock:
    """Named durations, printed at the end (the figures docs/deploy.md quotes)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.laps.items())


def shown(box: Container, check: Callable[[dict[str, str]], bool], what: str) -> dict[str, str]:
    """Wait until the agent's unit shows properties that pass ``check``; them."""
    props = ("ActiveState", "SubState", "MainPID", "NRestarts", "StatusText", "Result")

    def ok() -> dict[str, str] | None:
        found = box.show("resource-agent.service", *props)
        return found if check(found) else None

    try:
        found: dict[str, str] = wait_for(ok, timeout=30, interval=0.1, what=what)
    except AssertionError as exc:
        journal = box.run("journalctl", "-u", "resource-agent", "-n", "40", "--no-pager").stdout
        raise AssertionError(
            f"{exc}\nnow: {box.show('resource-agent.service', *props)}\n{journal}"
        ) from None
    return found


def config(agent_port: int, adb_port: int, jenkins: JenkinsServer) -> str:
    """What the administrator writes into /etc/resource-agent/agent.toml."""
    settings: dict[str, Any] = {
        "agent": {"node": NODE},
        # The container shares the host's network: free ports, on the loopback only.
        "server": {"listen": f"127.0.0.1:{agent_port}"},
        "adb": {"server": f"127.0.0.1:{adb_port}"},
        "coordinator": [
            {
                "url": jenkins.url,
                "user": "agent",
                "token_file": "jenkins.token",
                "tree": TREE,
                "retry_max": 2.0,
            }
        ],
        "resource": [{"id": RESOURCE, "name": "bench power supply", "metadata": {"rack": "A"}}],
    }
    return to_toml(settings)


def install_and_start(box: Container, jenkins: JenkinsServer, clock: Clock) -> str:
    """Clone, ``make install``, configure, ``enable --now``; the agent's URL."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    box.sh(
        f"git clone -q --no-hardlinks {ROOT} {SOURCE} && "
        f"git -C {SOURCE} checkout -q --detach {head}"
    )
    clock.lap("clone")
    box.sh(f"cd {SOURCE} && make -s install", timeout=180)
    clock.lap("make install")

    agent_port, adb_port = free_port(), free_port()
    token = jenkins.jenkins.users["agent"].token
    box.write("/etc/resource-agent/agent.toml", config(agent_port, adb_port, jenkins))
    box.write("/etc/resource-agent/jenkins.token", token + "\n", mode=0o600)
    box.write(
        "/run/systemd/system/resource-agent.service.d/watchdog.conf",
        f"[Service]\nWatchdogSec={WATCHDOG}s\n",
    )
    # Type=notify: this returns once the agent said READY=1 (or failed).
    box.sh("systemctl daemon-reload && systemctl enable --now " + " ".join(UNITS))
    clock.lap("enable --now")
    return f"http://127.0.0.1:{agent_port}"


def check_running(box: Container, jenkins: JenkinsServer, agent: str) -> dict[str, str]:
    """Both units run, the agent is READY and registered at Jenkins; its unit's properties."""
    for unit in UNITS:
        state = box.show(unit, "ActiveState", "SubState")
        assert state == {"ActiveState": "active", "SubState": "running"}, (unit, state)

    # The adb server is the venv's adbutils' adb, exec'd by resource-agent adb-server.
    def exec_d() -> str | None:
        pid = box.show("resource-agent-adb.service", "MainPID")["MainPID"]
        exe = box.run("readlink", f"/proc/{pid}/exe", check=False).stdout.strip()
        return exe if exe.endswith("/adb") else None  # python3 until it has exec'd

    adb_exe: str = wait_for(exec_d, what="the adb server exec'd")
    assert adb_exe.startswith("/opt/resource-agent/lib/python3"), adb_exe
    assert adb_exe.endswith("/site-packages/adbutils/binaries/adb"), adb_exe
    assert http_request(agent, "GET", "/api/health").status == 200

    # The token came through LoadCredential: Jenkins took it, the resource is there.
    registered = wait_for(
        lambda: jenkins.jenkins.resources(NODE).get(RESOURCE), what="the resource registered"
    )
    assert registered["enabled"] is True
    answered = jenkins.jenkins.recorded()
    assert answered and {(r.user, r.status) for r in answered} == {("agent", 200)}, answered
    return shown(box, lambda s: s["StatusText"].endswith("0 locked, 1 coordinator ok"), "STATUS")


def lock(rpc: JsonRpc4jClient) -> str:
    """Reserve for the queued job, then Lock for its build, as Jenkins does; the key."""
    reserved = rpc.reserve(RESOURCE, 60, "job/phone-tests/")
    assert reserved.ok and reserved.key, reserved
    locked = rpc.lock(RESOURCE, reserved.key, BUILD)
    assert locked.ok and locked.key == reserved.key, locked
    return locked.key


def freeze_until_restarted(box: Container, before: dict[str, str]) -> None:
    """SIGSTOP the agent; wait for the watchdog to kill it and systemd to start it again."""
    frozen = before["MainPID"]
    box.run("kill", "-STOP", frozen)
    shown(
        box,
        lambda s: (
            s["MainPID"] not in ("0", frozen)
            and s["ActiveState"] == "active"
            and s["NRestarts"] == str(int(before["NRestarts"]) + 1)
        ),
        "the watchdog to restart the agent",
    )
    journal = box.run("journalctl", "-u", "resource-agent", "--no-pager").stdout
    assert "Watchdog timeout" in journal, journal[-3000:]


def test_install_serve_watchdog_stop_uninstall(box: Container, jenkins: JenkinsServer) -> None:
    clock = Clock()
    agent = install_and_start(box, jenkins, clock)
    status = check_running(box, jenkins, agent)
    clock.lap("registered")

    rpc = JsonRpc4jClient(agent, jenkins=jenkins.url)
    key = lock(rpc)
    shown(box, lambda s: "1 locked, 1 coordinator ok" in s["StatusText"], "STATUS with the lock")
    clock.lap("lock")

    freeze_until_restarted(box, status)
    clock.lap("watchdog restart")
    res = http_request(agent, "GET", f"/api/resources/{RESOURCE}").json()
    assert res["state"] == "locked", res
    again = rpc.lock(RESOURCE, key, BUILD)  # the build still holds it, by the same key
    assert again.ok and again.key == key, again
    shown(box, lambda s: "1 locked, 1 coordinator ok" in s["StatusText"], "STATUS after it")
    clock.lap("lock kept")

    box.run("systemctl", "stop", *UNITS)
    for unit in UNITS:
        state = box.show(unit, "ActiveState", "Result")
        assert state == {"ActiveState": "inactive", "Result": "success"}, (unit, state)
    clock.lap("stop")

    # make uninstall leaves no unit (the test's own drop-in goes first).
    box.run("rm", "-r", "/run/systemd/system/resource-agent.service.d")
    box.sh(f"cd {SOURCE} && make -s uninstall")
    clock.lap("make uninstall")
    for unit in UNITS:
        assert box.show(unit, "LoadState") == {"LoadState": "not-found"}, unit
    listed = box.run("systemctl", "list-unit-files", "resource-agent*", "--no-legend", check=False)
    assert (listed.returncode, listed.stdout.strip()) == (1, ""), listed  # 1: none matched
    print(f"\nsystem test: boot {box.boot_seconds:.2f} s, {clock}")

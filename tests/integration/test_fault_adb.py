"""The adb server killed (SIGKILL) while phones are tracked and a session runs.

The real agent process follows its own real adb server, which knows two fake
phones over TCP. One phone is being provisioned for a Jenkins Lock (its
``boot-completed`` step polls a phone that is still booting); the other is
reserved by another build. The adb server is then killed outright. The step
must fail cleanly -- Lock answered NO with PROVISIONING_FAILED, naming the
server -- the teardown must end as the session rules say (a teardown that
cannot reach the phone leaves it unhealthy, never free, never stuck
cleaning), and once a new server is up the agent must follow it again: the
same two resources, no third, the reservation intact.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, listens
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import DEFAULT_PROPS, FakeAdbd
from tests.fakes.jsonrpc4j import JsonRpc4jClient, Result
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

BOOTING = {**DEFAULT_PROPS, "sys.boot_completed": "0"}
SETTLED = frozenset({"free", "reserved", "locked", "unhealthy", "absent", "disabled"})


def server_pid(server: AdbServer) -> int:
    """The pid of the process listening on the server's port."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if listens(int(entry.name), server.port):
                    return int(entry.name)
    raise AssertionError(f"nothing listens on {server.address}")


def states(agent: AgentProcess) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in agent.get("/api/resources")["resources"]}


def test_adb_server_killed_mid_session(
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
    phones: Callable[..., FakeAdbd],
) -> None:
    booting, other = phones(props=BOOTING), phones()
    with AdbServer(tmp_path / "adb-home") as server:
        for phone in (booting, other):
            server.connect(phone.serial)
        agent = agent_factory(
            adb=True,
            config={
                "agent": {"grace_period": 30.0},
                "adb": {"server": server.address, "allow_remote": True, "read_timeout": 2.0},
                "session": [{
                    "kind": "android", "lock_wait": 60,
                    "provision": [{"step": "boot-completed", "timeout": 60}],
                    "teardown": [{"step": "clear-logcat", "timeout": 10}],
                }],
            },
        )  # fmt: skip
        wait_for(lambda: len(states(agent)) == 2, what="both phones listed")
        jenkins = JsonRpc4jClient(agent.url, timeout=90)
        reserved = jenkins.reserve(other.serial, 600, "job/other/")
        assert reserved.ok, reserved
        key = jenkins.reserve(booting.serial, 60, "job/phone-tests/").key
        answers: list[Result] = []
        lock = threading.Thread(
            target=lambda: answers.append(jenkins.lock(booting.serial, key, "job/phone-tests/9/"))
        )
        lock.start()
        wait_for(lambda: states(agent)[booting.serial]["state"] == "provisioning", what="session")
        wait_for(lambda: booting.shell_count >= 2, what="the step to poll the booting phone")

        os.kill(server_pid(server), signal.SIGKILL)
        killed = time.monotonic()
        lock.join(30)
        answered = time.monotonic() - killed
        [locked] = answers
        assert locked.status == "NO" and locked.code == int(Code.PROVISIONING_FAILED), locked
        assert f"the adb server at {server.address} does not answer" in locked.message
        print(f"Lock answered NO {answered:.2f} s after the adb server died")

        # The teardown cannot reach the phone: unhealthy, as the rules say; not stuck.
        wait_for(lambda: all(r["state"] in SETTLED for r in states(agent).values()),
                 timeout=30, what="no resource provisioning or cleaning")  # fmt: skip
        now = states(agent)
        assert now[other.serial]["state"] == "reserved", now
        failed = now[booting.serial]
        assert failed["fault"] is not None and failed["fault"]["kind"] == "teardown failed"
        assert not failed["present"]  # nobody can ask adb: unknown, not usable

        server.start()  # a new server: the phones must be connected to it again
        for phone in (booting, other):
            server.connect(phone.serial)
        back = time.monotonic()
        wait_for(lambda: all(r["present"] for r in states(agent).values()), timeout=30,
                 what="both phones back")  # fmt: skip
        print(f"phones back {time.monotonic() - back:.2f} s after the new server listed them")
        now = states(agent)
        assert sorted(now) == sorted([booting.serial, other.serial]), now
        assert now[other.serial]["state"] == "reserved"
        assert now[other.serial]["holder"]["holder"]["url"] == "job/other/"
        assert now[booting.serial]["state"] == "unhealthy"
        assert f"lost the server at {server.address}" in agent.log()
        assert f"the server at {server.address} answers again" in agent.log()
        # An administrator's enable clears the fault; the phone is usable again.
        assert agent.post(f"/api/resources/{booting.serial}/enable", {}).status == 200
        wait_for(lambda: states(agent)[booting.serial]["state"] == "free", what="usable")
        assert jenkins.release(other.serial, reserved.key, "job/other/").ok
        assert "Traceback" not in agent.log(), agent.log_tail()
        for phone in (booting, other):
            server.disconnect(phone.serial)

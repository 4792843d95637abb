"""Sessions end to end: the real agent process, Jenkins' JSON-RPC client, the real CLI.

Resources here are static boards whose provisioning and teardown steps are
commands (the phone steps are proven against the real adb server in
test_sessions.py): what matters is what Jenkins, a build step and ``run`` see.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JENKINS, JsonRpc4jClient
from tests.support.waiting import wait_for

BUILD = "job/phone-tests/12/"


def board(rid: str, **metadata: str) -> dict[str, Any]:
    return {"id": rid, "metadata": {"type": "board", **metadata}}


def session(**table: Any) -> dict[str, Any]:
    return {"session": [{"kind": "static", "when": {"type": "board"}, **table}]}


def command(name: str, script: str, timeout: float = 20) -> dict[str, Any]:
    return {"step": "command", "name": name, "run": ["sh", "-c", script], "timeout": timeout}


def cli(agent: AgentProcess, *args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RESOURCE_AGENT_URL": agent.url, **(env or {})},
        check=False,
    )


def state(agent: AgentProcess, rid: str) -> str:
    return str(agent.get(f"/api/resources/{rid}")["state"])


@pytest.fixture
def agent(agent_factory: Callable[..., AgentProcess]) -> Callable[..., AgentProcess]:
    def make(resources: Sequence[dict[str, Any]], **table: Any) -> AgentProcess:
        return agent_factory(resources=resources, config=session(**table))

    return make


def test_a_failed_provisioning_refuses_jenkins_lock_and_cleans(
    agent: Callable[..., AgentProcess],
) -> None:
    a = agent(
        [board("b1")],
        provision=[command("flash", "echo writing image; echo checksum mismatch; exit 2")],
        teardown=[command("wipe", "sleep 1")],
    )
    jenkins = JsonRpc4jClient(a.url)
    reserved = jenkins.reserve("b1", 10, "job/phone-tests/")
    assert reserved.ok
    locked = jenkins.lock("b1", reserved.key, BUILD)
    assert locked.status == "NO" and locked.code == int(Code.PROVISIONING_FAILED)
    assert "at step flash" in locked.message and "checksum mismatch" in locked.message
    # Released, and cleaned before anyone else gets it: Reserve says so with its own code.
    assert state(a, "b1") == "cleaning"
    refused = jenkins.reserve("b1", 10, "job/phone-tests/")
    assert refused.status == "NO" and refused.code == int(Code.CLEANING)
    wait_for(lambda: state(a, "b1") == "free", timeout=10, what="teardown")
    assert jenkins.reserve("b1", 10, "job/phone-tests/").ok


def test_lock_wait_zero_answers_at_once_and_session_wait_fails_the_build(
    agent: Callable[..., AgentProcess],
) -> None:
    a = agent(
        [board("b1"), board("b2")],
        lock_wait=0,
        provision=[
            command("boot", "echo booting; sleep 1; echo booted"),
            command("check", 'test "$RESOURCE_ID" = b2 || { echo "wrong board"; exit 3; }'),
        ],
    )
    jenkins = JsonRpc4jClient(a.url)
    for rid in ("b1", "b2"):
        key = jenkins.reserve(rid, 10, "job/phone-tests/").key
        began = time.monotonic()
        assert jenkins.lock(rid, key, BUILD).ok
        assert time.monotonic() - began < 1  # did not wait for the 1 s step
        assert state(a, rid) == "provisioning"
    env = {"MD_EXTERNAL_RESOURCES_LOCKED_ID": "b1", "BUILD_URL": JENKINS + BUILD}
    failed = cli(a, "session", "wait", env=env)
    assert failed.returncode == 1, failed
    assert "booting" in failed.stdout and "booted" in failed.stdout  # the log, streamed
    assert "step check: FAILED" in failed.stdout and "wrong board" in failed.stdout
    assert "failed at step check" in failed.stderr
    # The holder keeps its lock until it releases (the build will fail and release it).
    assert state(a, "b1") == "locked"
    ok = cli(a, "session", "wait", env={**env, "MD_EXTERNAL_RESOURCES_LOCKED_ID": "b2"})
    assert ok.returncode == 0, ok
    assert "step check: ok" in ok.stdout and "b2 is ready" in ok.stdout
    other = cli(a, "session", "wait", env={**env, "BUILD_URL": JENKINS + "job/x/1/"})
    assert other.returncode == 1 and "not locked by" in other.stderr


def test_run_exports_the_resource_and_passes_the_exit_code_through(
    agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    a = agent(
        [board("b1", model="alpha"), board("b2", **{"model": "beta", "android.release": "14"})],
        provision=[command("hello", "echo preparing $RESOURCE_ID")],
    )
    out = tmp_path / "env"
    script = f"env > {out}; exit 7"
    done = cli(a, "run", "--select", "model=beta", "--", "sh", "-c", script)
    assert done.returncode == 7, done
    assert "preparing b2" in done.stdout
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["MD_EXTERNAL_RESOURCES_LOCKED_ID"] == "b2"
    assert env["MD_EXTERNAL_RESOURCES_LOCKED_MODEL"] == "beta"
    assert env["MD_EXTERNAL_RESOURCES_LOCKED_ANDROID_RELEASE"] == "14"
    assert "ANDROID_SERIAL" not in env  # a board, not a phone
    wait_for(lambda: state(a, "b2") == "free", timeout=10, what="release and teardown")
    nothing = cli(a, "run", "--select", "model=gamma", "--", "true")
    assert nothing.returncode == 1 and "no resource matches model=gamma" in nothing.stderr


def test_a_failed_provisioning_never_runs_the_command(
    agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    a = agent([board("b1")], provision=[command("flash", "echo no image; exit 1")])
    ran = tmp_path / "ran"
    done = cli(a, "run", "--", "touch", str(ran))
    assert done.returncode == 1 and "failed at step flash" in done.stderr
    assert "no image" in done.stdout and not ran.exists()


def test_run_wait_serves_in_the_order_people_came(
    agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    a = agent([board("b1")])
    held = a.post("/api/resources/b1/lock", {}).json()["hold"]["key"]
    order = tmp_path / "order"
    runs = []
    for name in ("first", "second", "third"):
        runs.append(_spawn_run(a, "--wait", "--timeout", "30", "--", "sh", "-c",
                               f"echo {name} >> {order}"))  # fmt: skip
        # Each is in line before the next starts.
        wait_for(_in_line(a, len(runs)), timeout=10, what=f"{name} in line")
    a.post("/api/resources/b1/release", {"key": held})
    for proc in runs:
        assert proc.wait(timeout=30) == 0
    assert order.read_text().split() == ["first", "second", "third"]


def _spawn_run(agent: AgentProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", *args],
        env={**os.environ, "RESOURCE_AGENT_URL": agent.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _in_line(agent: AgentProcess, count: int) -> Callable[[], bool]:
    return lambda: _waiting(agent) == count


def _waiting(agent: AgentProcess) -> int:
    """Connections to the agent from `run`s waiting in line (established TCP to its port)."""
    return sum(
        1
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for line in Path(table).read_text().splitlines()[1:]
        if line.split()[3] == "01" and int(line.split()[1].rsplit(":", 1)[1], 16) == agent.port
    )


def test_a_killed_run_loses_the_resource_when_its_lease_ends(
    agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    cleaned = tmp_path / "cleaned"
    a = agent([board("b1")], teardown=[command("wipe", f"touch {cleaned}")])
    proc = _spawn_run(a, "--lease", "5", "--", "sleep", "60")
    wait_for(lambda: state(a, "b1") == "locked", timeout=10, what="run to lock")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert state(a, "b1") == "locked"  # until the lease ends
    wait_for(lambda: state(a, "b1") == "free", timeout=15, what="lease end and teardown")
    assert cleaned.exists()
    [entry, *_] = a.get("/api/resources/b1/history")["history"]
    assert entry["end_reason"] == "lease expired"


def test_run_passes_signals_on_and_still_releases(
    agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    a = agent([board("b1")])
    started = tmp_path / "started"
    script = f"trap 'echo got TERM; exit 143' TERM; touch {started}; while :; do sleep 0.1; done"
    proc = _spawn_run(a, "--", "sh", "-c", script)
    wait_for(started.exists, timeout=10, what="the command to start")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 143 and "got TERM" in out
    assert state(a, "b1") == "free"


def test_a_killed_agent_fails_provisioning_and_repeats_teardown_on_restart(
    agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    a = agent(
        [board("b1")],
        lock_wait=0,
        provision=[command("slow", f"echo p >> {marks}; sleep 30")],
        teardown=[command("wipe", f"echo t >> {marks}; sleep 30")],
    )
    a.post("/api/resources/b1/lock", {})
    wait_for(marks.exists, timeout=10, what="provisioning to start")
    a.kill()
    a.start()
    wait_for(lambda: marks.read_text().count("t") == 1, timeout=10, what="teardown to start")
    assert state(a, "b1") == "cleaning"
    [record] = a.get("/api/sessions?resource=b1")["sessions"]
    assert record["status"] == "cleaning"
    log = a.request("GET", f"/api/sessions/{record['id']}/log").body.decode()
    assert "restarted during provisioning" in log
    a.kill()
    a.configure(session(teardown=[command("wipe", f"echo t >> {marks}")]))
    a.start()
    wait_for(lambda: state(a, "b1") == "free", timeout=10, what="teardown again, to its end")
    assert marks.read_text().split() == ["p", "t", "t"]


def test_rest_lock_refuses_a_failed_provisioning_with_its_own_code(
    agent: Callable[..., AgentProcess],
) -> None:
    a = agent([board("b1")], provision=[command("flash", "echo bad image; exit 1")])
    resp = a.post("/api/resources/b1/lock", {"holder": "alice"})
    assert resp.status == 409
    error = resp.json()["error"]
    assert error["code"] == int(Code.PROVISIONING_FAILED) and "bad image" in error["message"]
    # wait=0: the answer comes at once with the session to follow; the failure comes later.
    wait_for(lambda: state(a, "b1") == "free", timeout=10, what="teardown")
    taken = a.post("/api/resources/b1/lock", {"wait": 0}).json()
    assert taken["session"] and taken["resource"]["state"] == "provisioning"

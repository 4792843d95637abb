"""One agent per state directory: a second one refuses, a killed one never blocks a start.

Real processes: two ``serve`` on one state directory (as a new user would try,
with two configs and two ports), a SIGKILL while a session's command runs (a
child that outlives the agent must not keep the lock), and doctor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.statelock import LINGER, LOCK_FILE, StateLock, StateLocked
from tests.agentproc import AgentProcess
from tests.support.waiting import wait_for


def test_a_second_agent_on_the_state_dir_refuses_in_one_line(agent_factory: Any) -> None:
    first: AgentProcess = agent_factory(resources=["p1"])
    second: AgentProcess = agent_factory(
        start=False, resources=["p1"], config={"agent": {"state_dir": str(first.state_dir)}}
    )
    second.start(wait=False)
    assert second.wait() == 1
    [line] = second.run_log().splitlines()[1:]  # after the "--- start" marker
    assert str(first.state_dir) in line and f"PID {first.pid}" in line, line
    assert line.startswith("resource-agent: another agent"), line
    # The first one never noticed: it still serves, and holds are its alone.
    assert first.post("/api/resources/p1/lock").status == 200
    assert second.port != first.port and not second.running()


def test_a_lock_left_by_a_killed_agent_never_blocks(agent_factory: Any, tmp_path: Path) -> None:
    pid_file = tmp_path / "step.pid"
    session = {
        "kind": "static",
        "lock_wait": 0.0,
        "provision": [
            {"step": "command", "run": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]}
        ],
    }
    agent: AgentProcess = agent_factory(resources=["s1"], config={"session": [session]})
    assert agent.post("/api/resources/s1/lock", {"wait": 0}).status == 200
    step = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="step"))
    try:
        dead = agent.pid
        agent.kill()
        assert os.path.exists(f"/proc/{step}"), "the step should outlive the agent here"
        lock_file = agent.state_dir / LOCK_FILE
        assert lock_file.read_text().strip() == str(dead)  # stale: names the dead agent
        agent.start()  # not blocked: neither by the file, nor by the step still running
        assert lock_file.read_text().strip() == str(agent.pid)
    finally:
        os.kill(step, signal.SIGKILL)


def test_doctor_names_the_agent_running_on_the_state_dir(agent_factory: Any) -> None:
    agent: AgentProcess = agent_factory(resources=["d1"])

    def state_lock() -> dict[str, Any]:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "doctor",
                "--json",
                "--config",
                str(agent.config_path),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        [check] = [c for c in json.loads(run.stdout)["checks"] if c["name"] == "state lock"]
        return check  # type: ignore[no-any-return]

    running = state_lock()
    assert running["ok"] and f"PID {agent.pid}" in running["detail"], running
    assert str(agent.state_dir) in running["detail"]
    agent.terminate()
    assert state_lock()["detail"] == f"no agent runs on {agent.state_dir}"


def _holder_of_the_lock(state_dir: Path, seconds: float) -> subprocess.Popen[bytes]:
    """A process holding the state lock for ``seconds``, as a dead agent's writer would."""
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(state_dir / LOCK_FILE), str(seconds)],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
    return holder


def test_a_dead_agents_writer_delays_a_start_and_a_live_agent_refuses_it(tmp_path: Path) -> None:
    """The lock names a PID: when it no longer runs, whoever still holds the lock is the
    writer of that dead agent on its way out (agent/store_writer.py), so a start waits for
    it; when it runs, another agent is there and a start is refused at once."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              check=True, capture_output=True, text=True)  # fmt: skip
    holder = _holder_of_the_lock(state_dir, 0.5)
    (state_dir / LOCK_FILE).write_text(finished.stdout)  # a PID that no longer runs
    started = time.monotonic()
    with StateLock(state_dir):
        waited = time.monotonic() - started
        assert holder.poll() is not None, "taken while the writer still held it"
    assert 0.2 < waited < LINGER, waited
    holder.wait()

    holder = _holder_of_the_lock(state_dir, 30)
    try:
        (state_dir / LOCK_FILE).write_text(f"{holder.pid}\n")  # a PID that runs
        started = time.monotonic()
        with pytest.raises(StateLocked, match=f"PID {holder.pid}"), StateLock(state_dir):
            pass
        assert time.monotonic() - started < 0.5  # no wait for a live agent
    finally:
        holder.kill()
        holder.wait()

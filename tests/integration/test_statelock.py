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
from pathlib import Path
from typing import Any

from agent.statelock import LOCK_FILE
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

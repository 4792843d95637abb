"""The real agent under a stand-in service manager: sd_notify and journald logging.

The test binds the AF_UNIX datagram socket that systemd would, hands its name
to the agent in ``NOTIFY_SOCKET`` and reads what the agent sends.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.support.net import free_port
from tests.support.waiting import wait_for

WATCHDOG_USEC = "200000"  # 0.2 s: the agent pings every 0.1 s


class Manager:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = "\0" + name[1:] if name.startswith("@") else name
        self.sock.bind(address)
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float) -> dict[str, str] | None:
        """The next message as a dict, or None after ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.messages.append(fields)
        return fields

    def expect(self, key: str, value: str | None = None, timeout: float = 20.0) -> dict[str, str]:
        """Read messages until one carries ``key`` (with ``value``, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.receive(max(0.01, deadline - time.monotonic()))
            if msg is not None and key in msg and (value is None or msg[key] == value):
                return msg
        raise AssertionError(f"no {key}={value or '*'} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def manager() -> Iterator[Manager]:
    mgr = Manager(f"@resource-agent-test-{os.getpid()}-{time.monotonic_ns()}")
    yield mgr
    mgr.close()


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_ready_watchdog_status_stopping(tmp_path: Path, manager: Manager) -> None:
    agent = AgentProcess(
        tmp_path,
        resources=["r1", "r2"],
        env={"NOTIFY_SOCKET": manager.name, "WATCHDOG_USEC": WATCHDOG_USEC, "WATCHDOG_PID": None},
    )
    agent.start(wait=False)
    try:
        ready = manager.expect("READY", "1")
        # READY=1 means the listener is bound: a connection must succeed right now.
        assert _connects(agent.port), "READY=1 arrived before the port accepted connections"
        assert ready["STATUS"] == "2 resources, 0 locked, no coordinators"

        # The pings keep coming from the running loop.
        before = sum("WATCHDOG" in m for m in manager.messages)
        for _ in range(3):
            assert manager.expect("WATCHDOG", "1", timeout=5)["WATCHDOG"] == "1"
        assert sum("WATCHDOG" in m for m in manager.messages) >= before + 3

        # A lock changes the one-line status.
        assert agent.post("/api/resources/r1/lock", {"holder": "t"}).status == 200
        assert manager.expect("STATUS", "2 resources, 1 locked, no coordinators")

        agent.signal(signal.SIGTERM)
        stopping = manager.expect("STOPPING", "1")
        assert stopping["STATUS"] == "stopping"
        assert agent.wait() == 0
    finally:
        agent.stop()


def test_status_reports_coordinator_health(tmp_path: Path, manager: Manager) -> None:
    with JenkinsServer(FakeJenkins(nodes=["test-node"])) as jenkins:
        coordinators = [
            {"url": url, "timeout": 2.0}
            for url in (jenkins.url, f"http://127.0.0.1:{free_port()}/")
        ]
        agent = AgentProcess(
            tmp_path,
            resources=["r1"],
            config={"agent": {"node": "test-node"}, "coordinator": coordinators},
            env={"NOTIFY_SOCKET": manager.name},
        )
        with agent:
            # One Jenkins takes the resources, the other never answers.
            assert manager.expect("STATUS", "1 resource, 0 locked, 1 of 2 coordinators ok")
            assert "r1" in jenkins.jenkins.resources("test-node")


def test_watchdog_meant_for_another_pid_is_not_pinged(tmp_path: Path, manager: Manager) -> None:
    agent = AgentProcess(
        tmp_path,
        env={"NOTIFY_SOCKET": manager.name, "WATCHDOG_USEC": WATCHDOG_USEC, "WATCHDOG_PID": "1"},
    )
    agent.start(wait=False)
    try:
        manager.expect("READY", "1")
        # With the watchdog on, the first ping precedes READY=1 (it starts before the listener).
        assert not any("WATCHDOG" in m for m in manager.messages), manager.messages
        agent.signal(signal.SIGTERM)
        manager.expect("STOPPING", "1")
        assert agent.wait() == 0
    finally:
        agent.stop()


class OwnPidAgent(AgentProcess):
    """The agent started the way systemd does it: WATCHDOG_PID is the agent's own pid."""

    def command(self) -> list[str]:
        # The shell's $$ becomes the agent's pid through exec.
        return ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *super().command()]


def test_watchdog_pid_naming_the_agent_is_pinged(tmp_path: Path, manager: Manager) -> None:
    agent = OwnPidAgent(
        tmp_path, env={"NOTIFY_SOCKET": manager.name, "WATCHDOG_USEC": WATCHDOG_USEC}
    )
    with agent:
        manager.expect("READY", "1")
        for _ in range(2):
            manager.expect("WATCHDOG", "1", timeout=5)
        assert (Path(f"/proc/{agent.pid}/environ").read_bytes().split(b"\0")).count(
            f"WATCHDOG_PID={agent.pid}".encode()
        ) == 1


def test_notify_socket_as_a_path(tmp_path: Path) -> None:
    mgr = Manager(str(tmp_path / "notify"))
    agent = AgentProcess(tmp_path / "agent", env={"NOTIFY_SOCKET": mgr.name})
    try:
        agent.start()
        assert mgr.expect("READY", "1")["STATUS"] == "0 resources, 0 locked, no coordinators"
    finally:
        agent.stop()
        mgr.close()


def test_no_notify_socket_is_silent(tmp_path: Path) -> None:
    with AgentProcess(
        tmp_path, env={"NOTIFY_SOCKET": None, "WATCHDOG_USEC": WATCHDOG_USEC}
    ) as agent:
        assert agent.get("/api/health")
    assert agent.returncode == 0
    assert "service manager" not in agent.log(), agent.log_tail()


def _journald(agent: AgentProcess) -> AgentProcess:
    """Make the agent's log file its "journal stream": JOURNAL_STREAM=DEV:INODE of it."""
    agent.log_path.touch()
    st = agent.log_path.stat()
    agent.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    return agent


def _serving_line(agent: AgentProcess) -> str:
    wait_for(lambda: "serving" in agent.log(), what="the serving line")
    return next(x for x in agent.log().splitlines() if "serving" in x)


def test_journal_format_and_levels(tmp_path: Path) -> None:
    agents = {
        # Under journald: priority prefixes, no timestamps of our own.
        "journal": _journald(AgentProcess(tmp_path / "a")),
        # The config's level holds back info lines; --log-level overrides the config.
        "quiet": _journald(AgentProcess(tmp_path / "b", log_level="warning")),
        "loud": _journald(
            AgentProcess(tmp_path / "c", log_level="warning", args=["--log-level", "info"])
        ),
        # Outside journald: a timestamp and a level word, no priority prefix. Also when
        # JOURNAL_STREAM is only inherited: it names a stream that is not our stderr.
        "plain": AgentProcess(tmp_path / "d", env={"JOURNAL_STREAM": None}),
        "inherited": AgentProcess(tmp_path / "e", env={"JOURNAL_STREAM": "8:12345"}),
    }
    try:
        for agent in agents.values():  # all at once: five start-ups cost one
            agent.start(wait=False)
        for agent in agents.values():
            agent.wait_ready()
        assert _serving_line(agents["journal"]).startswith("<6>agent.daemon: serving")
        assert _serving_line(agents["loud"]).startswith("<6>agent.daemon: serving")
        for name in ("plain", "inherited"):
            line = _serving_line(agents[name])
            assert not line.startswith("<"), line
            assert line[:4].isdigit() and " INFO " in line, line
    finally:
        for agent in agents.values():
            agent.stop()
    quiet = agents["quiet"].log()
    assert "serving" not in quiet, quiet  # the info line was held back
    assert not [x for x in quiet.splitlines() if x.startswith("<6>")], quiet

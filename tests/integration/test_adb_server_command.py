"""``resource-agent adb-server``: the adb server resource-agent-adb.service runs.

The command is run as the unit runs it (the installed script, a config file),
and what it starts is checked: the adb of adbutils' wheel (platform-tools 36),
in the foreground, as the very process systemd started, on [adb] server's port.
With it, a TCP phone that dies is seen offline by the agent within seconds,
pushed by the server -- not by the agent's 30-second recheck, which the old adb
(Debian's 29) needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.cli.adb_server import adb_binary
from agent.discovery.adb import TCP_RECHECK
from agent.discovery.inventory import ADB_HEALTH
from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

SCRIPT = Path(sys.executable).parent / "resource-agent"
# Well under the agent's periodic recheck of TCP phones: only a push is this fast.
SEEN_WITHIN = 5.0


def adb_server_command(config: Path, server: AdbServer, log: Path) -> subprocess.Popen[bytes]:
    """``resource-agent adb-server --config CONFIG`` with the server's HOME."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(SCRIPT), "adb-server", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server.env(),
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], AdbServer]]:
    """The command running on a free port, and a client of that server."""
    server = AdbServer(tmp_path / "adb-home")
    config = tmp_path / "agent.toml"
    config.write_text(f'[adb]\nserver = "{server.address}"\n')
    proc = adb_server_command(config, server, tmp_path / "adb.log")
    try:
        wait_for(server.answers, timeout=10, what=f"adb-server on {server.address}")
        yield proc, server
    finally:
        proc.terminate()
        proc.wait(10)


def test_it_is_the_wheels_adb_in_the_foreground(
    served: tuple[subprocess.Popen[bytes], AdbServer],
) -> None:
    proc, server = served
    # exec, not a child: systemd's main process, its signals and exit status are adb's.
    assert Path(f"/proc/{proc.pid}/exe").resolve() == adb_binary().resolve()
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[1:-1]
    assert cmdline == [b"-P", str(server.port).encode(), b"server", b"nodaemon"]
    assert "Version 36." in server.adb("version")
    assert server.devices() == {}

    proc.send_signal(signal.SIGTERM)  # systemctl stop
    proc.wait(10)
    assert not server.answers()


def test_a_tcp_phone_going_offline_is_seen_within_seconds(
    served: tuple[subprocess.Popen[bytes], AdbServer],
    agent_factory: Callable[..., AgentProcess],
) -> None:
    _, server = served
    with FakeAdbd() as phone:
        server.connect(phone.serial)
        # No battery read is due for minutes: a failed read cannot give the death away.
        section = {"server": server.address, "allow_remote": True, "battery_interval": 300.0}
        agent = agent_factory(adb=True, config={"udev": {"enabled": False}, "adb": section})
        path = f"/api/resources/{phone.serial}"
        wait_for(lambda: agent.get(path)["health"] is None, what="the phone usable")

        phone.stop()
        died = time.monotonic()
        res = wait_for(
            lambda: (r := agent.get(path))["health"] is not None and r,
            timeout=SEEN_WITHIN,
            what=f"the agent to see {phone.serial} offline",
        )
        seen = time.monotonic() - died
    assert (res["health"], res["metadata"]["adb-state"]) == (ADB_HEALTH["offline"], "offline")
    assert res["state"] == "unhealthy"
    assert SEEN_WITHIN < TCP_RECHECK
    print(f"\nTCP phone offline seen by the agent after {seen:.3f} s")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[adb]\nserver = "10.1.2.3:5037"\n',
            "[adb] server = '10.1.2.3:5037': this command serves adb on 127.0.0.1 only;"
            ' set [adb] server = "127.0.0.1:5037"',
        ),
        ('[adb]\nserver = "localhost:x"\n', "adb.server: expected HOST:PORT, got 'localhost:x'"),
    ],
)
def test_a_server_it_cannot_serve_is_named(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(config)
    result = subprocess.run(
        [str(SCRIPT), "adb-server", "--config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr


def test_an_adbutils_without_its_adb_is_named(tmp_path: Path) -> None:
    # adbutils from a source package: the package is there, its binary is not.
    (tmp_path / "adbutils/binaries").mkdir(parents=True)
    (tmp_path / "adbutils/__init__.py").touch()
    (tmp_path / "adbutils/binaries/__init__.py").touch()
    config = tmp_path / "agent.toml"
    config.write_text('[adb]\nserver = "127.0.0.1:5999"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "adb-server", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no adb executable at {tmp_path}/adbutils/binaries/adb" in result.stderr
    assert "reinstall it from a wheel" in result.stderr

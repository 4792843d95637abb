"""``resource-agent doctor`` against a healthy set-up and against each broken one.

The doctor runs as a real process. Its world is real too: a private adb
server (with a fake phone that never got authorized), the strict Jenkins test
server, a fake phone in udev (``umockdev-run`` with
tests/fakes/devices/pixel.umockdev), the real agent holding its port, and
sockets, files and directories broken on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.fakes.jenkins import READ, FakeJenkins, JenkinsServer, User
from tests.support.net import free_port
from tests.support.tomlfile import merged, to_toml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "udev-rules" / "90-resource-agent.rules"
PIXEL = ROOT / "tests" / "fakes" / "devices" / "pixel.umockdev"
NODE = "build-7"
TREE = "phones"
TOKEN = "11a2b3c4d5e6"
ME = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")


@dataclass
class Report:
    """What one doctor run said."""

    code: int
    data: dict[str, Any]
    output: str

    def check(self, prefix: str) -> dict[str, Any]:
        """The one check whose name starts with ``prefix``."""
        found: list[dict[str, Any]] = [
            c for c in self.data["checks"] if c["name"].startswith(prefix)
        ]
        assert len(found) == 1, f"{prefix!r} in {self.output}"
        return found[0]

    def failures(self) -> list[str]:
        """Names of the failed checks."""
        return [c["name"] for c in self.data["checks"] if not c["ok"]]


class Setup:
    """A config and environment for doctor, healthy unless a test breaks it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.rules = directory / "rules.d" / RULES.name
        self.rules.parent.mkdir(parents=True)
        shutil.copy(RULES, self.rules)
        self.config: dict[str, Any] = {
            "agent": {"node": NODE, "state_dir": str(directory / "state")},
            "server": {"listen": f"127.0.0.1:{free_port()}"},
            "udev": {"enabled": False},
            "adb": {"enabled": False},
        }
        self.coordinators: list[dict[str, Any]] = []  # [[coordinator]] tables

    def run(
        self,
        *args: str,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        device: Path | None = None,
    ) -> Report:
        """Write the config and run ``resource-agent doctor --json``."""
        path = self.directory / "agent.toml"
        tables = merged(self.config, config or {})
        path.write_text(to_toml({**tables, "coordinator": self.coordinators}))
        child_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
        child_env.update({"RESOURCE_AGENT_UDEV_RULES": str(self.rules), **(env or {})})
        command = [sys.executable, "-m", "agent.cli", "doctor", "--config", str(path)]
        command += ["--user", ME, "--json", *args]
        if device is not None:
            command = ["umockdev-run", "-d", str(device), "--", *command]
        proc = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env,
            cwd=self.directory,
        )
        output = proc.stdout + proc.stderr
        try:
            data = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(f"doctor printed no JSON: {output}") from exc
        assert data["ok"] == (proc.returncode == 0), output
        return Report(proc.returncode, data, output)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture(scope="module")
def jenkins() -> Iterator[JenkinsServer]:
    fake = FakeJenkins(
        nodes=[NODE, "bare-node"],
        users={"agent": User(TOKEN), "reader-less": User(TOKEN, permissions=frozenset())},
    )
    fake.add_treenode(NODE, TREE)
    with JenkinsServer(fake) as server:
        yield server


def coordinator(
    setup: Setup, url: str, user: str = "agent", token: str = TOKEN, node: str = NODE
) -> None:
    """Add a [[coordinator]] whose token file (relative: beside the config) holds ``token``."""
    (setup.directory / "jenkins.token").write_text(token + "\n")
    setup.coordinators.append(
        {"url": url, "user": user, "token_file": "jenkins.token", "tree": TREE, "node": node}
    )


# ------------------------------------------------------------------- healthy


def test_healthy_setup_passes(setup: Setup, tmp_path: Path, jenkins: JenkinsServer) -> None:
    coordinator(setup, jenkins.url)
    with AdbServer(tmp_path / "adb-home") as adb:
        report = setup.run(
            config={"udev": {"enabled": True}, "adb": {"enabled": True, "server": adb.address}},
            device=PIXEL,
        )
    assert report.code == 0, report.output
    assert report.failures() == []
    assert report.check("usb 1-2")["detail"] == f"/dev/bus/usb/001/005 is open to {ME}"
    assert report.check("adb server")["detail"].startswith("adb server 1.0.")
    assert f"node '{NODE}' has tree '{TREE}'" in report.check("coordinator")["detail"]
    assert "is free" in report.check("listen port")["detail"]


def test_port_held_by_the_running_agent_passes(setup: Setup, tmp_path: Path) -> None:
    with AgentProcess(tmp_path / "running-agent") as agent:
        report = setup.run(config={"server": {"listen": f"127.0.0.1:{agent.port}"}})
    assert report.code == 0, report.output
    assert report.check("listen port")["detail"].endswith("held by a running resource-agent")


def test_text_output_names_each_fix(setup: Setup) -> None:
    os.remove(setup.rules)
    path = setup.directory / "agent.toml"
    path.write_text(to_toml(merged(setup.config, {"udev": {"enabled": True}})))
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
    env["RESOURCE_AGENT_UDEV_RULES"] = str(setup.rules)
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "doctor", "--config", str(path), "--user", ME],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ok    config: ")
    failing = lines.index(f"FAIL  udev rules: {setup.rules} is missing")
    assert lines[failing + 1].startswith("      fix: install them: `make install`")
    assert lines[-1] == "1 problem found"


# -------------------------------------------------------------------- broken


def test_bad_config(setup: Setup) -> None:
    report = setup.run(config={"server": {"listen": "8080", "colour": "blue"}})
    assert report.code == 1
    assert report.failures() == ["config"]
    check = report.check("config")
    assert "server." in check["detail"]
    assert check["fix"].startswith(f"edit {setup.directory / 'agent.toml'}")


def test_state_dir_is_a_file(setup: Setup) -> None:
    blocker = setup.directory / "state-file"
    blocker.write_text("not a directory")
    report = setup.run(config={"agent": {"state_dir": str(blocker)}})
    assert report.failures() == ["state directory"]
    assert report.check("state directory")["detail"] == f"{blocker} is not a directory"
    assert report.check("state directory")["fix"].startswith(f"move {blocker} out of the way")


def test_state_dir_under_a_file_is_not_writable(setup: Setup) -> None:
    blocker = setup.directory / "state-file"
    blocker.write_text("x")
    report = setup.run(config={"agent": {"state_dir": str(blocker / "state")}})
    assert report.code == 1
    check = report.check("state directory")
    assert check["detail"] == f"cannot write in {blocker}: Not a directory"
    assert f"make {blocker / 'state'} writable" in check["fix"]


def test_port_taken_by_another_program(setup: Setup) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        report = setup.run(config={"server": {"listen": f"127.0.0.1:{port}"}})
    assert report.failures() == ["listen port"]
    check = report.check("listen port")
    assert check["detail"] == f"127.0.0.1:{port} is taken by another program"
    assert f"ss -ltnp 'sport = :{port}'" in check["fix"]


def test_udev_rules_not_installed(setup: Setup) -> None:
    os.remove(setup.rules)
    report = setup.run(config={"udev": {"enabled": True}}, device=PIXEL)
    assert report.failures() == ["udev rules"]
    assert "make install" in report.check("udev rules")["fix"]


def test_device_node_not_open_to_the_agents_user(setup: Setup) -> None:
    report = setup.run("--user", "nobody", config={"udev": {"enabled": True}}, device=PIXEL)
    assert "usb 1-2 (Google Pixel_7, ABC123)" in report.failures()
    check = report.check("usb 1-2")
    assert (
        check["detail"]
        == "/dev/bus/usb/001/005 (crw-r--r-- root:root) is not read-write for nobody"
    )
    assert "udev rules did not apply" in check["fix"]


def test_adb_server_unreachable(setup: Setup) -> None:
    closed = f"127.0.0.1:{free_port()}"
    report = setup.run(config={"adb": {"enabled": True, "server": closed}})
    assert report.failures() == ["adb server"]
    check = report.check("adb server")
    assert check["detail"] == f"no adb server at {closed}: Connection refused"
    assert "resource-agent adb-server" in check["fix"]


def test_unauthorized_phone(setup: Setup, tmp_path: Path) -> None:
    with AdbServer(tmp_path / "adb-home") as adb, FakeAdbd(auth="refuse") as phone:
        adb.connect(phone.serial, state="unauthorized")
        report = setup.run(config={"adb": {"enabled": True, "server": adb.address}})
        adb.disconnect(phone.serial)
    assert report.failures() == [f"phone {phone.serial}"]
    assert "1 device(s)" in report.check("adb server")["detail"]
    assert "tap Allow" in report.check("phone")["fix"]


@pytest.mark.parametrize(
    ("case", "detail", "fix"),
    [
        ("unreachable", "unreachable: ", "check [[coordinator]] url"),
        ("bad token", "HTTP 401: Jenkins refused the token of agent", "create a new API token"),
        (
            "no permission",
            "HTTP 403: reader-less lacks a permission",
            "ExternalResource/LockRelease",
        ),
        ("empty token", "is empty", "create an API token for agent"),
        ("node missing", "Jenkins has no node 'nowhere'", "create the node 'nowhere'"),
        (
            "tree missing",
            "node 'bare-node' has no tree node 'phones'",
            "External Resource TreeNode",
        ),
    ],
)
def test_coordinator_problems(
    setup: Setup, jenkins: JenkinsServer, case: str, detail: str, fix: str
) -> None:
    if case == "unreachable":
        coordinator(setup, f"http://127.0.0.1:{free_port()}/")
    elif case == "bad token":
        coordinator(setup, jenkins.url, token="wrong")
    elif case == "no permission":
        assert READ not in jenkins.jenkins.users["reader-less"].permissions
        coordinator(setup, jenkins.url, user="reader-less")
    elif case == "empty token":
        coordinator(setup, jenkins.url, token="")
    elif case == "node missing":
        coordinator(setup, jenkins.url, node="nowhere")
    else:
        coordinator(setup, jenkins.url, node="bare-node")
    report = setup.run()
    assert report.code == 1
    assert len(report.failures()) == 1 and report.failures()[0].startswith("coordinator "), (
        report.output
    )
    check = report.check("coordinator")
    assert detail in check["detail"], check
    assert fix in check["fix"], check


def test_unreadable_ca_file_is_a_finding_not_a_crash(setup: Setup, tmp_path: Path) -> None:
    setup.coordinators.append(
        {"url": f"https://127.0.0.1:{free_port()}/", "ca_file": str(tmp_path / "missing-ca.pem")}
    )
    report = setup.run()
    assert report.code == 1, report.output
    check = report.check("coordinator")
    assert "cannot load ca_file" in check["detail"] and "missing-ca.pem" in check["detail"], check
    assert "ca_file" in check["fix"], check


# ------------------------------------------------------------- who may call


def test_without_tokens_doctor_warns_and_passes(setup: Setup) -> None:
    report = setup.run()
    assert report.code == 0, report.output
    tokens = report.check("API tokens")
    assert tokens["ok"] and "any local user can force-release and disable" in tokens["detail"]
    assert "token_files" in tokens["fix"]
    sources = report.check("JSON-RPC sources")
    assert sources["ok"] and "127.0.0.0/8" in sources["detail"]
    assert "add its host name or address to [server] jsonrpc_allow" in sources["detail"]
    assert report.check("state lock")["detail"].startswith("no agent runs on ")


def test_unusable_tokens_names_and_tls_files_fail(setup: Setup) -> None:
    (setup.directory / "ci.token").write_text("short\n")
    report = setup.run(
        config={
            "server": {
                "token_files": {"ci": "ci.token"},
                "jsonrpc_allow": ["localhost", "no-such-host.invalid"],
                "tls_listen": "127.0.0.1:8443",
                "tls_cert": "missing-cert.pem",
                "tls_key": "missing-key.pem",
            }
        }
    )
    assert report.code == 1
    assert sorted(report.failures()) == ["API tokens", "JSON-RPC sources", "TLS listener"]
    assert "is 5 characters" in report.check("API tokens")["detail"]
    assert "no-such-host.invalid does not resolve" in report.check("JSON-RPC sources")["detail"]
    assert "missing-cert.pem" in report.check("TLS listener")["detail"]


# ------------------------------------------------------- what doctor says it did


def test_udev_checks_are_skipped_when_udev_is_off(setup: Setup) -> None:
    os.remove(setup.rules)  # would fail, were udev on
    report = setup.run()
    assert report.code == 0, report.output
    names = [c["name"] for c in report.data["checks"]]
    assert "udev rules" not in names and not any(n.startswith("usb") for n in names)


def test_it_names_the_user_it_judged_for(setup: Setup) -> None:
    report = setup.run()
    assert report.check("user")["detail"] == f"file access is judged for {ME} (--user)"


def test_an_unknown_user_fails_clearly(setup: Setup) -> None:
    report = setup.run("--user", "no-such-user-here")
    assert report.failures() == ["user"]
    check = report.check("user")
    assert "there is no user 'no-such-user-here' on this machine" in check["detail"]
    assert "--user" in check["fix"]


def test_the_state_database_opens(setup: Setup) -> None:
    first = setup.run()
    assert "does not exist yet" in first.check("state database")["detail"]
    state = setup.directory / "state"
    state.mkdir()
    with AgentProcess(setup.directory / "running-agent", resources=["a", "b"]) as agent:
        agent.post("/api/resources/a/lock", {})
    shutil.copy(agent.state_dir / "state.db", state / "state.db")
    ok = setup.run()
    assert ok.check("state database")["detail"].endswith("opens: 2 resources, 1 held"), ok.output
    (state / "state.db").write_bytes(b"this is not a database" * 100)
    broken = setup.run()
    assert broken.failures() == ["state database"]
    assert "cannot be read" in broken.check("state database")["detail"]
    assert "move" in broken.check("state database")["fix"]


@pytest.mark.parametrize(
    ("text", "detail", "fix"),
    [
        (None, "does not exist", "create "),
        ("[agent\n", "not valid TOML", "correct the TOML syntax"),
        ("[agent]\nbogus = 1\nnode = 3\n", "has 2 problems", "edit "),
    ],
)
def test_config_problems_are_worded_as_what_they_are(
    setup: Setup, text: str | None, detail: str, fix: str
) -> None:
    path = setup.directory / "other.toml"
    if text is not None:
        path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "doctor", "--config", str(path), "--json"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    [check] = json.loads(proc.stdout)["checks"]
    assert detail in check["detail"] and check["fix"].startswith(fix), check

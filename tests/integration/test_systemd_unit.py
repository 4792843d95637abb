"""The shipped systemd unit and sysusers file, checked by systemd's own tools.

systemd is not PID 1 here, so nothing is started: ``systemd-analyze verify``
checks the unit offline (settings, and that ExecStart exists -- hence a copy
pointed at this checkout's real ``resource-agent``), ``systemd-analyze
security --offline=yes`` scores its hardening, and ``systemd-sysusers --root``
creates the user in a scratch root.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "resource-agent.service"
SYSUSERS = ROOT / "systemd" / "resource-agent.sysusers"
ADB_UNIT = ROOT / "systemd" / "resource-agent-adb.service"
SHIPPED_EXEC = "/opt/resource-agent/bin/resource-agent serve"
SHIPPED_ADB_EXEC = "/opt/resource-agent/bin/resource-agent adb-server"
# The score recorded in docs/deploy.md; a change that weakens the hardening fails here.
MAX_EXPOSURE = 2.0


def _settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in order (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _copy_with_exec(
    tmp_path: Path, exec_start: str, unit: Path = UNIT, shipped: str = SHIPPED_EXEC
) -> Path:
    text = unit.read_text()
    assert text.count(f"ExecStart={shipped}\n") == 1
    copy = tmp_path / unit.name
    copy.write_text(text.replace(f"ExecStart={shipped}", f"ExecStart={exec_start}"))
    return copy


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], check=False, capture_output=True, text=True, timeout=60, cwd=cwd
    )


def _agent_executable() -> Path:
    exe = Path(sys.executable).parent / "resource-agent"
    assert exe.is_file(), f"{exe} missing: install the project (pip install -e .)"
    return exe


def test_shipped_unit_settings() -> None:
    s = _settings(UNIT.read_text())
    assert s["ExecStart"] == [SHIPPED_EXEC]
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "User": "resource-agent",
        "SupplementaryGroups": "plugdev",
        "StateDirectory": "resource-agent",
        "ConfigurationDirectory": "resource-agent",
        "LoadCredential": "jenkins.token:/etc/resource-agent/jenkins.token",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "DeviceAllow": "char-usb_device rw",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], f"{key}: {s.get(key)}"
    assert re.fullmatch(r"\d+s", s["WatchdogSec"][0])


def test_verify_passes_with_a_real_executable(tmp_path: Path) -> None:
    copy = _copy_with_exec(tmp_path, f"{_agent_executable()} serve")
    result = _analyze("verify", str(copy), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resource-agent.service" not in result.stderr, result.stderr


def test_verify_catches_a_missing_executable(tmp_path: Path) -> None:
    # The same check fails when ExecStart does not exist: verify is really looking.
    copy = _copy_with_exec(tmp_path, "/nonexistent/resource-agent serve")
    result = _analyze("verify", str(copy), cwd=tmp_path)
    assert result.returncode != 0
    assert "/nonexistent/resource-agent" in result.stderr


def test_security_exposure(tmp_path: Path) -> None:
    copy = _copy_with_exec(tmp_path, f"{_agent_executable()} serve")
    result = _analyze("security", "--offline=yes", str(copy), cwd=tmp_path)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    score = float(found.group(1))
    print(f"\nsystemd-analyze security --offline=yes: exposure {score} {found.group(2)}")
    assert score <= MAX_EXPOSURE, result.stdout


def test_sysusers_creates_the_user_in_plugdev(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nplugdev:x:46:\n")
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    passwd = {
        line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()
    }
    user = passwd["resource-agent"]
    assert user[5] == "/var/lib/resource-agent"
    assert user[6] in ("/usr/sbin/nologin", "/sbin/nologin")
    groups = {
        line.split(":")[0]: line.split(":") for line in (etc / "group").read_text().splitlines()
    }
    assert groups["plugdev"][3] == "resource-agent"


def test_adb_server_unit(tmp_path: Path) -> None:
    s = _settings(ADB_UNIT.read_text())
    # In the foreground, for systemd: the adb of the agent's adbutils, not Debian's.
    assert s["ExecStart"] == [SHIPPED_ADB_EXEC]
    assert s["User"] == ["resource-agent"]
    assert s["Environment"] == ["HOME=/var/lib/resource-agent"]  # its key: ~/.android
    assert "resource-agent-adb.service" in _settings(UNIT.read_text())["Wants"][0]
    adb_unit = _copy_with_exec(
        tmp_path, f"{_agent_executable()} adb-server", ADB_UNIT, SHIPPED_ADB_EXEC
    )
    result = _analyze("verify", str(adb_unit), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _analyze("security", "--offline=yes", str(adb_unit), cwd=tmp_path)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    print(f"\nresource-agent-adb.service exposure {found.group(1)}")
    assert float(found.group(1)) <= MAX_EXPOSURE

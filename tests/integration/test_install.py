"""``make install`` and ``make uninstall`` into a staging root (DESTDIR).

The venv step is skipped (INSTALL_VENV=0) in all but one test, to keep them
fast; everything else is the real recipe: which files land where, with which modes, that an
administrator's config and token survive a reinstall and an uninstall, and
that an untouched install leaves no file behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from agent.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def make(target: str, destdir: Path, *extra: str, path: str | None = None, ok: bool = True) -> str:
    """Run ``make TARGET DESTDIR=... INSTALL_VENV=0`` (``extra`` may override); its output.

    ``path`` replaces ``$PATH``; ``ok=False`` expects make to fail.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "VIRTUAL_ENV"))}
    if path is not None:
        env["PATH"] = path
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), target, f"DESTDIR={destdir}", "INSTALL_VENV=0", *extra],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result.stdout + result.stderr


def files(root: Path) -> dict[str, int]:
    """Every file under root (relative path -> permission bits)."""
    return {
        "/" + str(p.relative_to(root)): p.stat().st_mode & 0o7777
        for p in root.rglob("*")
        if p.is_file()
    }


def test_install_places_the_files(tmp_path: Path) -> None:
    stage = tmp_path / "root"
    make("install", stage)
    assert files(stage) == {
        "/opt/resource-agent/share/doc/resource-agent/README.md": 0o644,
        "/etc/systemd/system/resource-agent.service": 0o644,
        "/etc/systemd/system/resource-agent-adb.service": 0o644,
        "/usr/lib/sysusers.d/resource-agent.conf": 0o644,
        "/etc/udev/rules.d/90-resource-agent.rules": 0o644,
        "/etc/resource-agent/agent.toml": 0o644,
        "/etc/resource-agent/jenkins.token": 0o600,
    }
    same = {
        "etc/systemd/system/resource-agent.service": "systemd/resource-agent.service",
        "etc/systemd/system/resource-agent-adb.service": "systemd/resource-agent-adb.service",
        "usr/lib/sysusers.d/resource-agent.conf": "systemd/resource-agent.sysusers",
        "etc/udev/rules.d/90-resource-agent.rules": "udev-rules/90-resource-agent.rules",
        "etc/resource-agent/agent.toml": "etc/agent.toml",
    }
    for installed, source in same.items():
        assert (stage / installed).read_text() == (ROOT / source).read_text(), installed
    assert (stage / "etc/resource-agent/jenkins.token").read_text() == ""
    # The example config is a working config.
    load_settings(stage / "etc/resource-agent/agent.toml")


def test_reinstall_and_uninstall_keep_the_administrators_files(tmp_path: Path) -> None:
    stage = tmp_path / "root"
    make("install", stage)
    config = stage / "etc/resource-agent/agent.toml"
    token = stage / "etc/resource-agent/jenkins.token"
    config.write_text('[agent]\nnode = "build-7"\n')
    token.write_text("11aa22bb\n")

    out = make("install", stage)
    assert "keeping the existing /etc/resource-agent/agent.toml" in out
    assert config.read_text() == '[agent]\nnode = "build-7"\n'
    assert token.read_text() == "11aa22bb\n"

    out = make("uninstall", stage)
    assert files(stage) == {
        "/etc/resource-agent/agent.toml": 0o644,
        "/etc/resource-agent/jenkins.token": 0o600,
    }
    assert "kept /etc/resource-agent" in out


def test_untouched_install_uninstalls_completely_with_another_prefix(tmp_path: Path) -> None:
    stage = tmp_path / "root"
    make("install", stage, "PREFIX=/opt/ra")
    unit = (stage / "etc/systemd/system/resource-agent.service").read_text()
    assert "ExecStart=/opt/ra/bin/resource-agent serve\n" in unit
    assert "/opt/resource-agent" not in unit
    adb_unit = (stage / "etc/systemd/system/resource-agent-adb.service").read_text()
    assert "ExecStart=/opt/ra/bin/resource-agent adb-server\n" in adb_unit
    assert "/opt/resource-agent" not in adb_unit
    assert (stage / "opt/ra/share/doc/resource-agent/README.md").is_file()

    make("uninstall", stage, "PREFIX=/opt/ra")
    assert files(stage) == {}
    assert not (stage / "opt/ra").exists()
    assert not (stage / "etc/resource-agent").exists()


def test_uninstall_removes_a_venv_prefix_whole(tmp_path: Path) -> None:
    stage = tmp_path / "root"
    make("install", stage)
    # What the venv step would have made (INSTALL_VENV=0 skips it).
    venv = stage / "opt/resource-agent"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin/resource-agent").write_text("#!/opt/resource-agent/bin/python\n")
    (venv / "lib/python3.11/site-packages/agent").mkdir(parents=True)
    make("uninstall", stage)
    assert not venv.exists()
    assert files(stage) == {}


def test_real_install_with_its_venv_twice(tmp_path: Path) -> None:
    # The whole recipe, venv and pip included: staged, run from the stage, installed
    # again over itself (an upgrade), and removed. The python3 found first on PATH
    # (pyenv, conda, a venv) is not the one the agent gets: the OS's is.
    stage = tmp_path / "root"
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").write_text("#!/bin/sh\necho 'not the python to install on' >&2\nexit 3\n")
    (shims / "python3").chmod(0o755)
    for _ in range(2):
        make("install", stage, "INSTALL_VENV=1", path=f"{shims}:{os.environ['PATH']}")
    venv = stage / "opt/resource-agent"
    assert "home = /usr/bin\n" in (venv / "pyvenv.cfg").read_text()
    assert os.readlink(venv / "bin/python3") == "/usr/bin/python3"
    script = (venv / "bin/resource-agent").read_text().splitlines()[0]
    assert script.startswith("#!/opt/resource-agent/bin/python"), script  # not the stage
    result = subprocess.run(
        [str(venv / "bin/python"), "-c", "import agent.doctor, agent.cli; print(agent.__file__)"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(venv / "lib")), result.stdout
    make("uninstall", stage, "INSTALL_VENV=1")
    assert files(stage) == {}


def _refused(tmp_path: Path, python: Path) -> str:
    stage = tmp_path / "root"
    python.symlink_to("/usr/bin/python3")  # a working interpreter, in the wrong place
    out = make("install", stage, "INSTALL_VENV=1", f"PYTHON={python}", ok=False)
    assert not stage.exists(), files(stage)  # refused before anything was written
    return out


def test_install_refuses_a_python_the_service_user_cannot_run(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    out = _refused(tmp_path, private / "python3")
    assert f"make install: {private}/python3 cannot be run by an unprivileged user" in out


def test_install_refuses_a_python_in_a_home_directory(tmp_path: Path) -> None:
    # Readable by everyone, yet hidden from the service by ProtectHome=yes.
    home = Path(tempfile.mkdtemp(prefix="ra-test-", dir="/home"))
    try:
        home.chmod(0o755)
        out = _refused(tmp_path, home / "python3")
        assert f"runs from {home}/python3, a home directory" in out
        assert "ProtectHome=yes" in out
    finally:
        shutil.rmtree(home)

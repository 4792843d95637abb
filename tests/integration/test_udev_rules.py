"""udev-rules/90-resource-agent.rules, applied by the real udevadm to fake devices.

``umockdev-run -d DEVICE.umockdev -- udevadm test --action=add SYSPATH`` runs
the rules on a device described in tests/fakes/devices/. udevadm reads rules
only from fixed system directories, so each run happens in a private mount
namespace (``unshare --mount``) where /etc/udev/rules.d is a temporary
directory holding just this file, the other rule directories are empty (or,
for one test, the distribution's), and /run and /dev are scratch tmpfs
(udevadm test writes its database and /dev/char links there). Nothing on the
machine is touched.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "udev-rules" / "90-resource-agent.rules"
DEVICES = ROOT / "tests" / "fakes" / "devices"
SYSPATH = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2"

# Runs as root inside the new mount namespace. $1 rules dir, $2 device file, $3 syspath,
# $4 "isolate" to hide the distribution's rules.
NAMESPACE_SCRIPT = r"""
set -e
mount --make-rprivate /
mount --bind "$1" /etc/udev/rules.d
if [ "$4" = isolate ]; then
  for d in /lib/udev/rules.d /usr/lib/udev/rules.d /usr/local/lib/udev/rules.d; do
    if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
  done
fi
mount -t tmpfs tmpfs /run
mkdir /run/host-dev
mount --rbind /dev /run/host-dev
mount -t tmpfs tmpfs /dev
for n in null zero full random urandom; do
  touch "/dev/$n" && mount --bind "/run/host-dev/$n" "/dev/$n"
done
exec umockdev-run -d "$2" -- udevadm test --action=add "$3"
"""


def udevadm_test(rules_dir: Path, device: str | Path, isolate: bool = True) -> str:
    """stdout and stderr of ``udevadm test`` for one fake device (a name, or a file).

    ``isolate``: rules_dir's rules only; else the distribution's rules as well.
    """
    device_file = device if isinstance(device, Path) else DEVICES / f"{device}.umockdev"
    unshare = ["unshare", "--mount"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
    result = subprocess.run(
        [
            *unshare,
            "sh",
            "-c",
            NAMESPACE_SCRIPT,
            "udev-test",
            str(rules_dir),
            str(device_file),
            SYSPATH,
            "isolate" if isolate else "",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules.d"
    directory.mkdir()
    shutil.copy(RULES, directory / RULES.name)
    return directory


def _properties(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if re.match(r"^[A-Z_]+=", line))


def _problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"invalid|error", line, re.I)]


@pytest.mark.parametrize("device", ["pixel", "pixel-fastboot"])
def test_phone_gets_group_mode_and_starts_the_agent(rules_dir: Path, device: str) -> None:
    output = udevadm_test(rules_dir, device)
    assert f"Reading rules file: /etc/udev/rules.d/{RULES.name}" in output, output
    assert not _problems(output), _problems(output)
    props = _properties(output)
    assert props["SYSTEMD_WANTS"] == "resource-agent.service", output
    assert ":systemd:" in props["TAGS"], output
    plugdev = re.search(rf"{RULES.name}:\d+ GROUP (\d+)", output)
    assert plugdev, output
    assert int(plugdev.group(1)) == grp.getgrnam("plugdev").gr_gid
    assert re.search(rf"{RULES.name}:\d+ MODE 0660", output), output


@pytest.mark.parametrize("device", ["keyboard", "hub", "mass-storage"])
def test_other_devices_are_left_alone(rules_dir: Path, device: str) -> None:
    output = udevadm_test(rules_dir, device)
    assert f"Reading rules file: /etc/udev/rules.d/{RULES.name}" in output, output
    assert not _problems(output), _problems(output)
    props = _properties(output)
    assert props["SUBSYSTEM"] == "usb", output  # the device was really processed
    assert "SYSTEMD_WANTS" not in props, output
    assert "TAGS" not in props, output
    assert not re.search(rf"{RULES.name}:\d+ (GROUP|MODE)", output), output


def test_an_invalid_line_would_be_caught(rules_dir: Path) -> None:
    # The "no Invalid" checks above can fail: a broken rule does show up.
    rules = rules_dir / RULES.name
    rules.write_text(rules.read_text() + 'ENV{ID_BUS}=="usb", FROBNICATE="1"\n')
    assert _problems(udevadm_test(rules_dir, "pixel"))


@pytest.mark.parametrize(("device", "ours"), [("pixel", True), ("keyboard", False)])
def test_with_the_distributions_rules_ours_have_the_last_word(
    rules_dir: Path, tmp_path: Path, device: str, ours: bool
) -> None:
    # Without ID_USB_INTERFACES in the fake's udev database, the distribution's
    # usb_id builtin must work it out from the USB descriptors, as on a real machine.
    text = (DEVICES / f"{device}.umockdev").read_text()
    stripped = tmp_path / f"{device}.umockdev"
    stripped.write_text(
        "\n".join(x for x in text.splitlines() if not x.startswith("E: ID_USB_INTERFACES="))
    )
    output = udevadm_test(rules_dir, stripped, isolate=False)
    assert "50-udev-default.rules" in output, output  # the distribution's rules did run
    props = _properties(output)
    assert props["ID_USB_INTERFACES"] == (":060101:ff4201:" if ours else ":030101:030000:")
    assert not [x for x in _problems(output) if RULES.name in x]
    ours_path = f"/etc/udev/rules.d/{RULES.name}"
    permissions = re.findall(r"(\S+\.rules):\d+ (GROUP|MODE) (\S+)", output)
    if ours:
        assert props["SYSTEMD_WANTS"] == "resource-agent.service"
        assert [p for p in permissions if p[1] == "GROUP"][-1][0] == ours_path, permissions
        assert [p for p in permissions if p[1] == "MODE"][-1] == (ours_path, "MODE", "0660")
    else:
        assert "SYSTEMD_WANTS" not in props
        assert not [p for p in permissions if p[0] == ours_path], permissions

"""Where a USB device hangs in the tree, and uhubctl called the way its manual says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.recovery.usb import port_of, uhubctl_cycle

ROOT = "/sys/devices/pci0000:00/0000:00:14.0/usb1"


def test_a_device_on_a_root_hub_port() -> None:
    port = port_of(f"{ROOT}/1-2")
    assert port is not None
    assert (port.hub, port.hub_name, port.number, port.location) == (ROOT, "usb1", 2, "1")
    assert port.disable_switch == Path(ROOT, "1-0:1.0", "usb1-port2", "disable")


def test_a_device_behind_hubs() -> None:
    port = port_of(f"{ROOT}/1-2/1-2.4/1-2.4.1")
    assert port is not None
    assert (port.hub_name, port.number, port.location) == ("1-2.4", 1, "1-2.4")
    assert port.disable_switch == Path(ROOT, "1-2", "1-2.4", "1-2.4:1.0", "1-2.4-port1", "disable")


@pytest.mark.parametrize("syspath", [ROOT, f"{ROOT}/1-2/1-2:1.0", "/sys/devices/virtual/net/lo"])
def test_what_is_not_a_device_in_a_port(syspath: str) -> None:
    assert port_of(syspath) is None


def fake_uhubctl(tmp_path: Path, script: str) -> str:
    program = tmp_path / "uhubctl"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(program)


async def test_uhubctl_cycles_the_port(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    program = fake_uhubctl(tmp_path, f'echo "$@" >> {calls}; echo "Sent power cycle"')
    port = port_of(f"{ROOT}/1-2/1-2.3")
    assert port is not None
    assert await uhubctl_cycle(program, port, 5) == "Sent power cycle"
    assert calls.read_text().split() == ["-l", "1-2", "-p", "3", "-a", "cycle", "-d", "2"]


async def test_uhubctl_failures_are_named(tmp_path: Path) -> None:
    port = port_of(f"{ROOT}/1-2/1-2.3")
    assert port is not None
    broken = fake_uhubctl(tmp_path, "echo 'No compatible devices detected!'; exit 1")
    with pytest.raises(OSError, match="exited with status 1: No compatible devices detected"):
        await uhubctl_cycle(broken, port, 5)
    hung = fake_uhubctl(tmp_path, "exec sleep 30")
    with pytest.raises(OSError, match=r"did not finish in 0\.5 s"):
        await uhubctl_cycle(hung, port, 0.5)
    with pytest.raises(OSError):
        await uhubctl_cycle(os.fspath(tmp_path / "missing"), port, 5)

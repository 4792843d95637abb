"""Where a USB device hangs in the tree, and the sysfs switches that replug it.

A device's kernel name says where it is: ``1-2`` is port 2 of bus 1's root
hub, ``1-2.3`` port 3 of the hub at ``1-2``. The hub's ports are directories
below its interface (``1-2:1.0/1-2-port3``; a root hub's ``usb1`` has
``1-0:1.0/usb1-port2``), and each has a ``disable`` switch where the hub can
switch port power. A device's own ``authorized`` switch unbinds and rebinds
it: a replug without touching power.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^(\d+)-(\d+(?:\.\d+)*)$")
PAUSE = 1.0  # seconds a device stays unbound, or a port unpowered


@dataclass(frozen=True, slots=True)
class Port:
    """One port of one hub, and the device in it."""

    device: str  # the device's syspath
    hub: str  # the hub's syspath
    hub_name: str  # the hub's kernel name: ``usb1`` (a root hub) or ``1-2``
    number: int

    @property
    def disable_switch(self) -> Path:
        """The port's power switch in sysfs."""
        if self.hub_name.startswith("usb"):
            interface = f"{self.hub_name.removeprefix('usb')}-0:1.0"
        else:
            interface = f"{self.hub_name}:1.0"
        return Path(self.hub) / interface / f"{self.hub_name}-port{self.number}" / "disable"

    @property
    def location(self) -> str:
        """The hub as uhubctl names it (``-l``): ``1`` for bus 1's root hub, else ``1-2``."""
        return self.hub_name.removeprefix("usb")


def port_of(syspath: str) -> Port | None:
    """The port the device at ``syspath`` is plugged into, or None (not a USB device)."""
    path = Path(syspath)
    match = _NAME.match(path.name)
    if match is None:
        return None
    bus, ports = match.groups()
    head, _, last = ports.rpartition(".")
    hub_name = f"{bus}-{head}" if head else f"usb{bus}"
    return Port(syspath, str(path.parent), hub_name, int(last))


def _write(path: Path, value: str) -> None:
    with path.open("w") as f:
        f.write(value)


async def write_switch(path: Path, off: str, on: str) -> None:
    """Set a sysfs switch to ``off``, wait, and set it back to ``on`` (OSError if it can't)."""
    await asyncio.to_thread(_write, path, off)
    await asyncio.sleep(PAUSE)
    await asyncio.to_thread(_write, path, on)


async def uhubctl_cycle(program: str, port: Port, timeout: float) -> str:
    """Switch the port's power off and on with uhubctl; its output (OSError if it fails)."""
    argv = [program, "-l", port.location, "-p", str(port.number), "-a", "cycle", "-d", "2"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise OSError(f"{' '.join(argv)} did not finish in {timeout:g} s") from None
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise OSError(f"{' '.join(argv)} exited with status {proc.returncode}: {text[-200:]}")
    return text

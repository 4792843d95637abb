"""A umockdev testbed driven through ctypes, and fake USB devices to plug into it.

umockdev fakes sysfs and udev for processes run under ``umockdev-wrapper``:
the agent, started as a child with ``UMOCKDEV_DIR=<testbed.root>`` in its
environment, sees these devices through the real libudev and receives real
uevents. Quirks handled here:

- ``remove_device`` emits nothing: ``unplug`` sends the ``remove`` uevent first.
- umockdev sends uevents over non-blocking AF_UNIX datagram sockets
  (``<root>/event<N>``), and the kernel queues at most
  ``net.unix.max_dgram_qlen`` (10) unread datagrams: one more aborts THIS
  process. So every send is paced: after ``BURST`` sends, wait until the
  receivers' queues are empty again, as the kernel's sock_diag reports them.
  That keeps sends back to back while the receiver keeps up.
- The testbed must exist before anything in this process calls libudev, and
  is freed with ``g_object_unref`` (which removes its temporary directory).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BURST = 8  # uevents sent without checking the queues (the kernel's limit is 10)
DRAIN_TIMEOUT = 10.0


def umockdev_active() -> bool:
    """Whether this process runs under ``umockdev-wrapper``."""
    return "umockdev-preload" in os.environ.get("LD_PRELOAD", "")


def _libs() -> tuple[Any, Any]:
    lib = ctypes.CDLL("libumockdev.so.0")
    gobj = ctypes.CDLL("libgobject-2.0.so.0")
    lib.umockdev_testbed_new.restype = ctypes.c_void_p
    lib.umockdev_testbed_get_root_dir.restype = ctypes.c_char_p  # leaks a small g_strdup
    lib.umockdev_testbed_get_root_dir.argtypes = [ctypes.c_void_p]
    lib.umockdev_testbed_add_devicev.restype = ctypes.c_char_p
    lib.umockdev_testbed_add_devicev.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.umockdev_testbed_uevent.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.umockdev_testbed_remove_device.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.umockdev_testbed_set_property.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
    ]
    gobj.g_object_unref.argtypes = [ctypes.c_void_p]
    return lib, gobj


def _strv(values: Mapping[str, str]) -> Any:
    items: list[bytes | None] = [s.encode() for kv in values.items() for s in kv]
    items.append(None)
    return (ctypes.c_char_p * len(items))(*items)


# ------------------------------------------------------- receive queue probe

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_UDIAG_SHOW_NAME = 0x01
_UDIAG_SHOW_RQLEN = 0x10
_UNIX_DIAG_NAME = 0
_UNIX_DIAG_RQLEN = 4


def busy_sockets(prefix: str) -> list[str]:
    """Paths under ``prefix`` of AF_UNIX sockets with unread data (sock_diag dump)."""
    show = _UDIAG_SHOW_NAME | _UDIAG_SHOW_RQLEN
    req = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, show, 0, 0)
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    header = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, flags, 1, 0)
    busy: list[str] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.sendto(header + req, (0, 0))
        while True:
            data = nl.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == _NLMSG_DONE:
                    return busy
                if kind == _NLMSG_ERROR:
                    raise OSError("sock_diag refused the dump request")
                name, rqueue = _parse_unix_diag(data[offset + 16 : offset + length])
                if rqueue and name.startswith(prefix):
                    busy.append(name)
                offset += (length + 3) & ~3


def _parse_unix_diag(msg: bytes) -> tuple[str, int]:
    name, rqueue = "", 0
    pos = 16  # struct unix_diag_msg
    while pos + 4 <= len(msg):
        alen, atype = struct.unpack_from("=HH", msg, pos)
        if alen < 4:
            break
        payload = msg[pos + 4 : pos + alen]
        if atype == _UNIX_DIAG_NAME:
            name = payload.rstrip(b"\0").decode(errors="replace")
        elif atype == _UNIX_DIAG_RQLEN:
            rqueue = struct.unpack_from("=I", payload)[0]
        pos += (alen + 3) & ~3
    return name, rqueue


# ------------------------------------------------------------------- devices


@dataclass(frozen=True)
class UsbSpec:
    """What a fake USB device says about itself (sysfs attributes, udev properties)."""

    attrs: Mapping[str, str]
    props: Mapping[str, str]


def _spec(
    vid: str,
    pid: str,
    interfaces: str,
    *,
    manufacturer: str | None,
    product: str | None,
    serial: str | None,
    device_class: str = "00",
) -> UsbSpec:
    attrs = {"idVendor": vid, "idProduct": pid, "bDeviceClass": device_class, "speed": "480"}
    attrs["authorized"] = "1"  # the kernel's switch to unbind and rebind the device
    props = {
        "DEVTYPE": "usb_device",
        "DRIVER": "usb",
        "ID_BUS": "usb",
        "ID_VENDOR_ID": vid,
        "ID_MODEL_ID": pid,
        "ID_USB_INTERFACES": interfaces,
    }
    if manufacturer is not None:
        attrs["manufacturer"] = manufacturer
        props["ID_VENDOR_ENC"] = manufacturer.replace(" ", "\\x20")
    if product is not None:
        attrs["product"] = product
        props["ID_MODEL_ENC"] = product.replace(" ", "\\x20")
    if serial is not None:
        attrs["serial"] = serial
        props["ID_SERIAL_SHORT"] = serial
    return UsbSpec(attrs, props)


def phone(serial: str | None, product: str = "Pixel 7", fastboot: bool = False) -> UsbSpec:
    """An Android phone: MTP and ADB interfaces, or only fastboot's."""
    interfaces = ":ff4203:" if fastboot else ":060101:ff4201:"
    return _spec(
        "18d1",
        "4ee0" if fastboot else "4ee7",
        interfaces,
        manufacturer="Google",
        product=product,
        serial=serial,
    )


def hub() -> UsbSpec:
    """A USB 2 hub."""
    return _spec(
        "05e3",
        "0610",
        ":090000:",
        manufacturer="GenesysLogic",
        product="USB2.0 Hub",
        serial=None,
        device_class="09",
    )


def keyboard() -> UsbSpec:
    """A boot keyboard (HID)."""
    return _spec(
        "046d", "c31c", ":030101:", manufacturer="Logitech", product="USB Keyboard", serial=None
    )


def mass_storage(serial: str) -> UsbSpec:
    """A USB stick (mass storage, bulk-only)."""
    return _spec("0781", "5581", ":080650:", manufacturer="SanDisk", product="Ultra", serial=serial)


@dataclass
class _Node:
    name: str  # the kernel's name: usb1, 1-2, 1-2.3
    bus: int
    id_path: str
    children: set[int] = field(default_factory=set)


class Testbed:
    """One umockdev testbed: a PCI xHCI controller per bus, and what is plugged into it."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self) -> None:
        if not umockdev_active():
            raise RuntimeError("run under umockdev-wrapper (LD_PRELOAD lacks umockdev-preload)")
        self._lib, self._gobj = _libs()
        self._tb = self._lib.umockdev_testbed_new()
        self.root = self._lib.umockdev_testbed_get_root_dir(self._tb).decode()
        self._nodes: dict[str, _Node] = {}
        self._devnum: dict[int, int] = {}
        self._unchecked = 0
        self.drain_waits = 0  # times a send had to wait for a receiver to catch up

    @property
    def env(self) -> dict[str, str]:
        """What a child process needs in its environment to see this testbed."""
        return {"UMOCKDEV_DIR": self.root}

    def close(self) -> None:
        """Free the testbed (its temporary directory goes with it)."""
        if self._tb:
            self._gobj.g_object_unref(self._tb)
            self._tb = None
            # Testbed.new set UMOCKDEV_DIR in the C environment, which children
            # started with env=None inherit: do not leave it naming a deleted dir.
            os.unsetenv("UMOCKDEV_DIR")

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- topology

    def controller(self, bus: int = 1) -> str:
        """An xHCI controller with its root hub ``usb<bus>``; the root hub's syspath."""
        pci_name = f"0000:00:{0x13 + bus:02x}.0"
        pci = self._add(
            "pci",
            f"pci0000:00/{pci_name}",
            None,
            {"vendor": "0x8086", "device": "0xa36d", "class": "0x0c0330"},
            {"DRIVER": "xhci_hcd", "PCI_ID": "8086:A36D", "PCI_CLASS": "C0330"},
        )
        attrs = {"idVendor": "1d6b", "idProduct": "0002", "bDeviceClass": "09", "busnum": str(bus)}
        attrs |= {"devnum": "1", "product": "xHCI Host Controller"}
        props = {"DEVTYPE": "usb_device", "DRIVER": "usb", "ID_VENDOR_ID": "1d6b"}
        props |= {
            "ID_MODEL_ID": "0002",
            "ID_USB_INTERFACES": ":090000:",
            "ID_PATH": f"pci-{pci_name}",
        }
        props |= {"BUSNUM": f"{bus:03d}", "DEVNUM": "001"}
        path = self._add("usb", f"usb{bus}", pci, attrs, props)
        self._nodes[path] = _Node(f"usb{bus}", bus, f"pci-{pci_name}")
        self._devnum[bus] = 1
        return path

    def plug(self, parent: str, port: int, spec: UsbSpec, id_path: bool = True) -> str:
        """Plug ``spec`` into ``port`` of the hub at ``parent``; the new syspath.

        The kernel's name and ``ID_PATH`` follow the topology (``1-2.3``,
        ``pci-...-usb-0:2.3``); ``id_path=False`` leaves ``ID_PATH`` out.
        """
        up = self._nodes[parent]
        name = f"{up.bus}-{port}" if up.name.startswith("usb") else f"{up.name}.{port}"
        ports = name.split("-", 1)[1]
        self._devnum[up.bus] += 1
        devnum = self._devnum[up.bus]
        root_path = self._nodes[parent].id_path.split("-usb-")[0]
        attrs = dict(spec.attrs) | {
            "busnum": str(up.bus),
            "devnum": str(devnum),
            "dev": f"189:{(up.bus - 1) * 128 + devnum - 1}",
        }
        props = dict(spec.props) | {
            "BUSNUM": f"{up.bus:03d}",
            "DEVNUM": f"{devnum:03d}",
            "DEVNAME": f"/dev/bus/usb/{up.bus:03d}/{devnum:03d}",
        }
        node_path = f"{root_path}-usb-0:{ports}"
        if id_path:
            props["ID_PATH"] = node_path
        path = self._add("usb", name, parent, attrs, props)
        self._nodes[path] = _Node(name, up.bus, node_path)
        return path

    def sysfs(self, syspath: str, *names: str) -> Path:
        """The testbed file the agent sees as ``syspath/names...`` in sysfs."""
        return Path(self.root + syspath, *names)

    def port_switch(self, hub: str, port: int) -> Path:
        """Give port ``port`` of the hub at ``hub`` a power switch (``disable``); its file."""
        name = Path(hub).name
        interface = f"{name.removeprefix('usb')}-0:1.0" if name.startswith("usb") else f"{name}:1.0"
        switch = self.sysfs(hub, interface, f"{name}-port{port}", "disable")
        switch.parent.mkdir(parents=True, exist_ok=True)
        switch.write_text("0\n")
        return switch

    def unplug(self, syspath: str) -> None:
        """Unplug a device (and what hangs off it): ``remove`` uevents, then the sysfs tree."""
        for child in [p for p in self._nodes if p.startswith(syspath + "/")]:
            self.unplug(child)
        self._paced()
        self._lib.umockdev_testbed_uevent(self._tb, syspath.encode(), b"remove")
        self._lib.umockdev_testbed_remove_device(self._tb, syspath.encode())
        self._nodes.pop(syspath, None)

    def change(self, syspath: str, props: Mapping[str, str]) -> None:
        """Set udev properties and send a ``change`` uevent."""
        for key, value in props.items():
            self._lib.umockdev_testbed_set_property(
                self._tb, syspath.encode(), key.encode(), value.encode()
            )
        self._paced()
        self._lib.umockdev_testbed_uevent(self._tb, syspath.encode(), b"change")

    # -------------------------------------------------------------- internal

    def _add(
        self,
        subsystem: str,
        name: str,
        parent: str | None,
        attrs: Mapping[str, str],
        props: Mapping[str, str],
    ) -> str:
        self._paced()
        path = self._lib.umockdev_testbed_add_devicev(
            self._tb,
            subsystem.encode(),
            name.encode(),
            parent.encode() if parent else None,
            _strv(attrs),
            _strv(props),
        )
        if path is None:
            raise RuntimeError(f"umockdev refused to add {subsystem} device {name}")
        return str(path.decode())

    def drained(self) -> bool:
        """Whether every receiver has read every uevent sent so far."""
        return not busy_sockets(self.root + "/event")

    def _paced(self) -> None:
        """Before one uevent: make sure no receiver's queue can overflow."""
        if self._unchecked >= BURST:
            if not self.drained():
                self.drain_waits += 1
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while busy := busy_sockets(self.root + "/event"):
                if time.monotonic() > deadline:
                    raise AssertionError(f"nobody reads the uevents queued on {busy}")
                time.sleep(0.0005)
            self._unchecked = 0
        self._unchecked += 1

"""The udev source: USB devices plugged in now and as they come and go.

pyudev's netlink monitor is bridged into the asyncio loop with ``add_reader``
(no thread, no polling): each time the socket is readable, every pending
event is drained, the last one per device wins (an unplug and replug in one
batch is then a mere update), and the batch goes to the inventory in one call,
so a hub bringing 100 devices costs one pass. At start-up, the monitor starts
first and then the devices already plugged in are enumerated (coldplug), so
nothing slips between the two.

Identity. The inventory names a device by its USB serial (``ID_SERIAL_SHORT``)
when that is unique, else by its physical port: ``ID_PATH`` (``pci-0000:00:14.0
-usb-0:2``), stable across replugs into the same port. When udev has no
``ID_PATH`` (umockdev devices, or udev without its path_id builtin), the port is
the kernel's device name, the last component of the sysfs path (``1-2.3``:
bus 1, port 2, then port 3 of the hub there): also physical, but the bus
number follows the controllers' probe order.

Metadata: ``vendor-id``, ``product-id``, ``manufacturer``, ``product``,
``serial``, ``usb-port``; strings udev lacks are read through pyusb in a worker
thread (agent/discovery/usb.py) and added when they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agent.discovery.inventory import Inventory, UsbFacts
from agent.discovery.match import (
    MatchRule,
    Verdict,
    classify,
    needs_ancestors,
    render,
)
from agent.discovery.sysfs import device_info
from agent.discovery.usb import BusAddress, read_descriptors
from agent.lifecycle import Service
from agent.meters import Meters
from agent.model import ID_PATTERN

log = logging.getLogger(__name__)

# Sysfs attributes worth keeping (their files vanish with the device), each read
# only when the udev property that carries the same value is missing.
KEPT_ATTRIBUTES = {
    "idVendor": "ID_VENDOR_ID",
    "idProduct": "ID_MODEL_ID",
    "manufacturer": "ID_VENDOR_ENC",
    "product": "ID_MODEL_ENC",
    "serial": "ID_SERIAL_SHORT",
}
STRINGS = ("manufacturer", "product", "serial")
MAX_BATCH = 1000  # events per callback, so a flood cannot starve the loop
_ID = re.compile(ID_PATTERN)
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(value: str) -> str:
    """udev's ``_ENC`` encoding (``Pixel\\x207``) decoded."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value).strip()


@dataclass(frozen=True, slots=True)
class Seen:
    """What is kept of a device once read: enough to describe it again."""

    syspath: str
    sys_name: str
    properties: Mapping[str, str]
    attributes: Mapping[str, str]
    verdict: Verdict
    extra: Mapping[str, str] = field(default_factory=dict)  # from pyusb

    @property
    def bus_address(self) -> BusAddress | None:
        """(BUSNUM, DEVNUM), what libusb knows the device by."""
        bus = self.properties.get("BUSNUM", "")
        dev = self.properties.get("DEVNUM", "")
        return (int(bus), int(dev)) if bus.isdigit() and dev.isdigit() else None

    def missing_strings(self) -> bool:
        """Whether udev lacks a descriptor string that pyusb might read."""
        meta = base_metadata(self)
        return any(name not in meta for name in STRINGS)


def base_metadata(seen: Seen) -> dict[str, str]:
    """The standard metadata, from udev first and pyusb where udev lacks it."""
    props, attrs = seen.properties, seen.attributes
    candidates = {
        "vendor-id": props.get("ID_VENDOR_ID") or attrs.get("idVendor"),
        "product-id": props.get("ID_MODEL_ID") or attrs.get("idProduct"),
        "manufacturer": unescape(props.get("ID_VENDOR_ENC", "")) or attrs.get("manufacturer"),
        "product": unescape(props.get("ID_MODEL_ENC", "")) or attrs.get("product"),
        "serial": props.get("ID_SERIAL_SHORT") or attrs.get("serial"),
        "usb-port": port_of(seen),
    }
    meta = {k: v.strip() for k, v in candidates.items() if v and v.strip()}
    for key in ("vendor-id", "product-id"):
        if key in meta:
            meta[key] = meta[key].lower()
    for key, value in seen.extra.items():
        meta.setdefault(key, value)
    return meta


def port_of(seen: Seen) -> str:
    """The physical port: ``ID_PATH``, else the kernel's name (``1-2.3``)."""
    return seen.properties.get("ID_PATH") or seen.sys_name


def to_facts(seen: Seen) -> UsbFacts:
    """The inventory's view of a matched device: names, metadata, health."""
    props = seen.properties
    meta = base_metadata(seen)

    def lookup(name: str) -> str | None:
        return meta.get(name) or props.get(name)

    rule = seen.verdict.rule
    vid_pid = f"{meta.get('vendor-id', '?')}:{meta.get('product-id', '?')}"
    name = " ".join(filter(None, (meta.get("manufacturer"), meta.get("product"))))
    name = name or " ".join(
        filter(None, (props.get("ID_VENDOR_FROM_DATABASE"), props.get("ID_MODEL_FROM_DATABASE")))
    )
    name = name or f"USB device {vid_pid}"
    if rule is not None and rule.name:
        name = render(rule.name, lookup) or name
    description = f"{name} ({vid_pid}) on USB port {meta['usb-port']}"
    if rule is not None and rule.description:
        description = render(rule.description, lookup)
    if rule is not None:
        meta.update({k: render(v, lookup) for k, v in rule.metadata.items()})
    serial = props.get("ID_SERIAL_SHORT") or seen.attributes.get("serial")
    return UsbFacts(
        syspath=seen.syspath,
        serial=serial if serial and _ID.match(serial) else None,
        port=port_of(seen),
        kind=seen.verdict.kind,
        name=name,
        description=description,
        metadata=meta,
        health=seen.verdict.health,
    )


class UdevSource(Service):
    """Feeds the inventory with the USB devices udev sees (a daemon Component)."""

    def __init__(
        self, inventory: Inventory, rules: Sequence[MatchRule], meters: Meters | None = None
    ) -> None:
        self._inventory = inventory
        self._meters = meters
        self._rules = list(rules)
        self._ancestors = needs_ancestors(self._rules)
        self._seen: dict[str, Seen] = {}  # matched devices by syspath
        self._context: Any = None
        self._monitor: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start listening, then report what is plugged in already."""
        try:
            import pyudev  # only here: importing it touches libudev (and umockdev's fake)

            self._context = pyudev.Context()
            self._monitor = pyudev.Monitor.from_netlink(self._context)
            self._monitor.filter_by("usb", "usb_device")
            self._monitor.start()
        except (ImportError, OSError) as exc:
            log.error(
                "udev: cannot watch USB devices (%s); install libudev1, "
                "or set [udev] enabled = false",
                exc,
            )
            raise
        self._resync()
        asyncio.get_running_loop().add_reader(self._monitor.fileno(), self._on_readable)
        log.info("udev: watching USB devices (%d matched now)", len(self._seen))

    async def stop(self) -> None:
        """Stop listening; descriptor reads in flight are dropped."""
        if self._monitor is not None:
            asyncio.get_running_loop().remove_reader(self._monitor.fileno())
            self._monitor = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------- internal

    def _resync(self) -> None:
        """Enumerate everything (coldplug, or after lost events) as a snapshot."""
        devices = self._context.list_devices(subsystem="usb", DEVTYPE="usb_device")
        seen = [s for d in devices if (s := self._read(d)) is not None]
        self._seen = {s.syspath: s for s in seen}
        self._inventory.usb_snapshot([to_facts(s) for s in seen])
        self._enrich(seen)

    def _on_readable(self) -> None:
        latest: dict[str, Any] = {}
        try:
            for _ in range(MAX_BATCH):
                device = self._monitor.poll(timeout=0)
                if device is None:
                    break
                if self._meters is not None:
                    self._meters.udev_events.labels(device.action or "unknown").inc()
                latest.pop(device.sys_path, None)  # keep arrival order of the last event
                latest[device.sys_path] = device
        except OSError as exc:  # ENOBUFS: the kernel dropped events; look again
            log.warning("udev: monitor error (%s); enumerating devices again", exc)
            self._resync()
            return
        added: list[Seen] = []
        fresh: list[Seen] = []  # new appearances: worth a pyusb read if udev lacks strings
        removed: list[str] = []
        for syspath, device in latest.items():
            seen = None if device.action == "remove" else self._read(device)
            if seen is None:
                if self._seen.pop(syspath, None) is not None:
                    log.info("udev: %s %s", device.action, syspath)
                removed.append(syspath)
                continue
            old = self._seen.get(syspath)
            if old is not None and old.bus_address == seen.bus_address:
                seen = replace(seen, extra=old.extra)  # same appearance: keep what pyusb said
            else:
                log.info("udev: %s %s (%s)", device.action, syspath, seen.verdict.kind.value)
                fresh.append(seen)
            self._seen[syspath] = seen
            added.append(seen)
        self._inventory.usb_changed([to_facts(s) for s in added], removed)
        self._enrich(fresh)

    def _read(self, device: Any) -> Seen | None:
        """The device as kept, or None if no rule takes it (or it went away)."""
        try:
            info = device_info(device, self._ancestors)
            verdict = classify(info, self._rules)
            if verdict is None:
                return None
            attrs = {
                name: value
                for name, prop in KEPT_ATTRIBUTES.items()
                if not info.properties.get(prop) and (value := info.attributes.get(name))
            }
        except OSError as exc:  # sysfs vanished under us: the remove event follows
            log.debug("udev: cannot read %s: %s", device.sys_path, exc)
            return None
        return Seen(device.sys_path, device.sys_name, info.properties, attrs, verdict)

    def _enrich(self, seen: Sequence[Seen]) -> None:
        """Read the strings udev lacks through pyusb, off the loop, for all at once."""
        wanted = {
            addr: s.syspath
            for s in seen
            if s.missing_strings() and (addr := s.bus_address) is not None
        }
        if wanted:
            task = asyncio.get_running_loop().create_task(self._read_usb(wanted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read_usb(self, wanted: dict[BusAddress, str]) -> None:
        found = await asyncio.to_thread(read_descriptors, set(wanted))
        updated = []
        for addr, strings in found.items():
            current = self._seen.get(wanted[addr])
            if current is None or current.bus_address != addr:
                continue  # unplugged (or replugged) meanwhile
            seen = replace(current, extra=strings)
            self._seen[seen.syspath] = seen
            updated.append(to_facts(seen))
        if updated:
            self._inventory.usb_changed(updated)

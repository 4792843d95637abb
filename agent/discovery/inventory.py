"""What udev and adb say about devices, merged into one resource per device.

Sources report facts keyed their own way (udev by sysfs path, adb by serial);
the inventory turns them into resource ids and tells the authority what each
resource now is. A USB phone's udev facts and adb facts share one resource,
matched by serial. Ids are the USB serial when it is unique among present
devices, else ``usb-<ID_PATH>``; indexes by serial keep every change local to
the devices sharing that serial, so a storm of N devices is O(N) work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.discovery import FactSink
from agent.discovery.match import FASTBOOT_HEALTH
from agent.model import AdbState, Description, Kind

log = logging.getLogger(__name__)

# adb's state words, and what each means for a person looking at the phone.
ADB_HEALTH: dict[str, str] = {
    AdbState.UNAUTHORIZED: "accept the USB debugging prompt on the phone",
    AdbState.OFFLINE: "adb reports the phone offline; replug it or restart adb",
    AdbState.RECOVERY: "the phone is in recovery mode",
    AdbState.RESCUE: "the phone is in rescue mode",
    AdbState.SIDELOAD: "the phone is in sideload mode",
    AdbState.BOOTLOADER: FASTBOOT_HEALTH,  # the same words as udev's fastboot interface
    AdbState.AUTHORIZING: "adb is still authorizing the phone",
    AdbState.CONNECTING: "adb is still connecting to the phone",
    AdbState.NO_PERMISSIONS: "no permission to open the USB device; check the udev rules",
}


@dataclass(frozen=True, slots=True)
class UsbFacts:
    """One USB device as udev (and pyusb) describe it."""

    syspath: str
    serial: str | None
    port: str
    kind: Kind
    name: str
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    health: str | None = None  # e.g. a phone in fastboot


@dataclass(frozen=True, slots=True)
class AdbFacts:
    """One device as the adb server lists it."""

    serial: str
    state: str  # adb's word: an AdbState, or a word newer than this agent
    name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def _text(value: str) -> str:
    """Text that can be stored and sent: bytes a device sent undecodable become '?'.

    pyudev and sysfs hand such bytes over as lone surrogates, which neither
    SQLite nor JSON accept; one cheap phone must not stop the agent.
    """
    return value.encode("utf-8", "replace").decode("utf-8")


def port_id(port: str) -> str:
    """The id of a device known only by its physical port."""
    return "usb-" + port


class Inventory:
    """Resolves facts into resources and reports only what changed."""

    def __init__(self, sink: FactSink, adb_enabled: bool) -> None:
        self._sink = sink
        self._adb_enabled = adb_enabled
        self._adb_connected = False
        self._usb: dict[str, UsbFacts] = {}  # by syspath
        self._by_serial: dict[str, set[str]] = {}  # serial -> syspaths
        self._id_of: dict[str, str] = {}  # syspath -> resource id
        self._syspath_of: dict[str, str] = {}  # resource id -> syspath
        self._adb: dict[str, AdbFacts] = {}  # by serial
        self._shown: dict[str, tuple[Description, str | None]] = {}

    # ------------------------------------------------------------------- usb

    def usb_changed(self, added: Iterable[UsbFacts] = (), removed: Iterable[str] = ()) -> None:
        """Devices added or changed, and sysfs paths removed, in one pass."""
        touched_serials: set[str] = set()
        touched_ids: set[str] = set()
        for syspath in removed:
            old = self._usb.pop(syspath, None)
            if old is not None:
                self._unindex(old, touched_serials, touched_ids)
        for facts in added:
            old = self._usb.pop(facts.syspath, None)
            if old is not None:
                self._unindex(old, touched_serials, touched_ids)
            self._usb[facts.syspath] = facts
            if facts.serial:
                self._by_serial.setdefault(facts.serial, set()).add(facts.syspath)
                touched_serials.add(facts.serial)
            else:
                self._assign(facts.syspath, port_id(facts.port), touched_ids)
        for serial in touched_serials:
            self._reassign_serial(serial, touched_ids)
        self._publish(touched_ids)

    def usb_snapshot(self, present: Iterable[UsbFacts]) -> None:
        """Everything udev sees now (coldplug): the rest is gone."""
        present = list(present)
        keep = {f.syspath for f in present}
        self.usb_changed(added=present, removed=[p for p in self._usb if p not in keep])

    # ------------------------------------------------------------------- adb

    def adb_connected(self, connected: bool) -> None:
        """Whether the adb server is reachable (phones without adb facts wait for it)."""
        if connected == self._adb_connected:
            return
        self._adb_connected = connected
        self._publish(self._android_ids())

    def adb_changed(self, facts: AdbFacts) -> None:
        """A device's adb state or properties changed (or it appeared)."""
        if self._adb.get(facts.serial) == facts:
            return
        self._adb[facts.serial] = facts
        self._publish({facts.serial})

    def adb_removed(self, serial: str) -> None:
        """adb no longer lists the device."""
        if self._adb.pop(serial, None) is not None:
            self._publish({serial})

    def adb_snapshot(self, devices: Iterable[AdbFacts]) -> None:
        """adb's whole device list: update what changed, remove what is missing."""
        devices = list(devices)
        keep = {d.serial for d in devices}
        for serial in [s for s in self._adb if s not in keep]:
            self.adb_removed(serial)
        for facts in devices:
            self.adb_changed(facts)

    def syspath_of(self, resource_id: str) -> str | None:
        """The sysfs path of the resource's USB device, if udev sees one."""
        return self._syspath_of.get(resource_id)

    # -------------------------------------------------------------- internal

    def _unindex(self, old: UsbFacts, serials: set[str], ids: set[str]) -> None:
        if old.serial:
            paths = self._by_serial[old.serial]
            paths.discard(old.syspath)
            if not paths:
                del self._by_serial[old.serial]
            serials.add(old.serial)
        resource_id = self._id_of.pop(old.syspath, None)
        if resource_id is not None:
            self._syspath_of.pop(resource_id, None)
            ids.add(resource_id)

    def _assign(self, syspath: str, resource_id: str, ids: set[str]) -> None:
        old = self._id_of.get(syspath)
        if old is not None and old != resource_id:
            self._syspath_of.pop(old, None)
            ids.add(old)
        self._id_of[syspath] = resource_id
        self._syspath_of[resource_id] = syspath
        ids.add(resource_id)

    def _reassign_serial(self, serial: str, ids: set[str]) -> None:
        paths = self._by_serial.get(serial, set())
        if len(paths) > 1:
            log.warning(
                "%d present devices report the serial %s (%s): they are named by port instead",
                len(paths),
                serial,
                ", ".join(sorted(paths)),
            )
        for syspath in paths:
            facts = self._usb[syspath]
            resource_id = serial if len(paths) == 1 else port_id(facts.port)
            self._assign(syspath, resource_id, ids)
        ids.add(serial)  # adb facts for the serial may now (not) belong to a device

    def _android_ids(self) -> set[str]:
        ids = {self._id_of[p] for p, f in self._usb.items() if f.kind is Kind.ANDROID}
        return ids | set(self._adb)

    def _adb_part(self, resource_id: str) -> AdbFacts | None:
        # A serial reported by several USB devices cannot say which one adb means.
        if len(self._by_serial.get(resource_id, ())) > 1:
            return None
        return self._adb.get(resource_id)

    def _compose(self, resource_id: str) -> tuple[Description, str | None] | None:
        syspath = self._syspath_of.get(resource_id)
        usb = self._usb.get(syspath) if syspath is not None else None
        adb = self._adb_part(resource_id)
        if usb is None and adb is None:
            return None
        metadata: dict[str, str] = dict(usb.metadata) if usb else {}
        health = usb.health if usb else None
        if adb is not None:
            metadata.update(adb.metadata)
            metadata["adb-state"] = adb.state
            if health is None and adb.state != AdbState.DEVICE:
                health = ADB_HEALTH.get(adb.state, f"adb reports the state {adb.state!r}")
        elif health is None and usb is not None and usb.kind is Kind.ANDROID and self._adb_enabled:
            health = (
                "waiting for the adb server to list the phone"
                if self._adb_connected
                else "the adb server is not reachable"
            )
        name = (adb.name if adb and adb.name else "") or (usb.name if usb else resource_id)
        description = usb.description if usb and usb.description else name
        desc = Description(
            id=resource_id,
            name=_text(name),
            kind=usb.kind if usb else Kind.ANDROID,
            description=_text(description),
            metadata={_text(k): _text(v) for k, v in metadata.items()},
        )
        return desc, health

    def _publish(self, ids: Iterable[str]) -> None:
        for resource_id in sorted(set(ids)):
            now = self._compose(resource_id)
            before = self._shown.get(resource_id)
            if now == before:
                continue
            if now is None:
                del self._shown[resource_id]
                self._sink.vanish(resource_id)
                continue
            self._shown[resource_id] = now
            desc, health = now
            if before is None or before[0] != desc:
                self._sink.describe(desc)
            if before is None or before[1] != health:
                self._sink.set_health(resource_id, health)

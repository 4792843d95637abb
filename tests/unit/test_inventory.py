"""The inventory: udev and adb facts merged into one resource per device."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.discovery.inventory import ADB_HEALTH, AdbFacts, Inventory, UsbFacts, port_id
from agent.model import Description, Kind


@dataclass
class Sink:
    """Records what the inventory tells the authority, in order."""

    calls: list[tuple[str, str, object]] = field(default_factory=list)
    shown: dict[str, Description] = field(default_factory=dict)
    health: dict[str, str | None] = field(default_factory=dict)

    def describe(self, desc: Description) -> None:
        self.calls.append(("describe", desc.id, desc))
        self.shown[desc.id] = desc

    def vanish(self, resource_id: str) -> None:
        self.calls.append(("vanish", resource_id, None))
        self.shown.pop(resource_id, None)

    def set_health(self, resource_id: str, reason: str | None) -> None:
        self.calls.append(("health", resource_id, reason))
        self.health[resource_id] = reason


def phone(syspath: str, serial: str | None, port: str, **metadata: str) -> UsbFacts:
    return UsbFacts(syspath, serial, port, Kind.ANDROID, "Pixel", metadata=metadata)


@pytest.fixture
def sink() -> Sink:
    return Sink()


def test_usb_phone_and_its_adb_facts_are_one_resource(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=True)
    inv.adb_connected(True)
    inv.usb_changed([phone("/sys/a", "ABC", "pci-1", **{"usb-port": "1-2"})])
    assert sink.health["ABC"] == "waiting for the adb server to list the phone"
    inv.adb_changed(AdbFacts("ABC", "device", "Pixel 7", {"model": "Pixel 7", "sdk": "34"}))
    desc = sink.shown["ABC"]
    assert (desc.name, desc.kind) == ("Pixel 7", Kind.ANDROID)
    assert dict(desc.metadata) == {
        "usb-port": "1-2",
        "model": "Pixel 7",
        "sdk": "34",
        "adb-state": "device",
    }
    assert sink.health.get("ABC") is None
    assert list(sink.shown) == ["ABC"]


def test_adb_states_become_health_reasons(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=True)
    inv.usb_changed([phone("/sys/a", "ABC", "pci-1")])
    assert sink.health["ABC"] == "the adb server is not reachable"
    for state in ("unauthorized", "offline", "recovery", "sideload", "bootloader"):
        inv.adb_changed(AdbFacts("ABC", state))
        assert sink.health["ABC"] == ADB_HEALTH[state]
    inv.adb_changed(AdbFacts("ABC", "strange"))
    assert sink.health["ABC"] == "adb reports the state 'strange'"
    inv.adb_changed(AdbFacts("ABC", "device"))
    assert sink.health.get("ABC") is None


def test_without_adb_a_usb_phone_is_usable(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    inv.usb_changed([phone("/sys/a", "ABC", "pci-1")])
    assert "ABC" in sink.shown
    assert sink.health.get("ABC") is None


def test_fastboot_health_from_udev_wins(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=True)
    fastboot = UsbFacts("/sys/a", "ABC", "pci-1", Kind.ANDROID, "Pixel", health="fastboot")
    inv.usb_changed([fastboot])
    inv.adb_changed(AdbFacts("ABC", "device"))
    assert sink.health["ABC"] == "fastboot"


def test_duplicate_serials_fall_back_to_ports_and_back(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    inv.usb_changed([phone("/sys/a", "0123456789ABCDEF", "pci-1")])
    assert list(sink.shown) == ["0123456789ABCDEF"]
    inv.usb_changed([phone("/sys/b", "0123456789ABCDEF", "pci-2")])
    assert sorted(sink.shown) == [port_id("pci-1"), port_id("pci-2")]
    inv.usb_changed(removed=["/sys/b"])
    assert list(sink.shown) == ["0123456789ABCDEF"]


def test_adb_facts_of_a_duplicated_serial_belong_to_no_device(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=True)
    inv.adb_connected(True)
    inv.usb_changed([phone("/sys/a", "DUP", "pci-1"), phone("/sys/b", "DUP", "pci-2")])
    inv.adb_changed(AdbFacts("DUP", "device", "Pixel 7", {"model": "Pixel 7"}))
    assert sorted(sink.shown) == [port_id("pci-1"), port_id("pci-2")]
    assert all("model" not in d.metadata for d in sink.shown.values())


def test_serialless_device_is_named_by_port(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    inv.usb_changed([UsbFacts("/sys/k", None, "pci-0:14.0-usb-0:3", Kind.USB, "Relay board")])
    assert list(sink.shown) == ["usb-pci-0:14.0-usb-0:3"]


def test_adb_only_device_comes_and_goes(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=True)
    inv.adb_snapshot([AdbFacts("10.0.0.5:5555", "device", "Pixel 6")])
    assert sink.shown["10.0.0.5:5555"].kind is Kind.ANDROID
    inv.adb_snapshot([])
    assert sink.calls[-1] == ("vanish", "10.0.0.5:5555", None)


def test_unplug_keeps_resource_while_adb_still_lists_it(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=True)
    inv.usb_changed([phone("/sys/a", "ABC", "pci-1")])
    inv.adb_changed(AdbFacts("ABC", "device"))
    inv.usb_changed(removed=["/sys/a"])
    assert "ABC" in sink.shown
    inv.adb_removed("ABC")
    assert sink.calls[-1] == ("vanish", "ABC", None)


def test_nothing_is_reported_twice(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    inv.usb_changed([phone("/sys/a", "ABC", "pci-1")])
    before = len(sink.calls)
    inv.usb_changed([phone("/sys/a", "ABC", "pci-1")])
    inv.usb_snapshot([phone("/sys/a", "ABC", "pci-1")])
    assert len(sink.calls) == before


def test_snapshot_removes_what_is_no_longer_there(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    inv.usb_changed([phone("/sys/a", "A", "pci-1"), phone("/sys/b", "B", "pci-2")])
    inv.usb_snapshot([phone("/sys/b", "B", "pci-2")])
    assert list(sink.shown) == ["B"]


def test_storm_reports_each_device_once(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    inv.usb_changed([phone(f"/sys/{i}", f"S{i:03d}", f"pci-{i}") for i in range(100)])
    described = [c for c in sink.calls if c[0] == "describe"]
    assert len(described) == 100
    assert len(sink.shown) == 100


def test_undecodable_device_strings_are_made_safe(sink: Sink) -> None:
    inv = Inventory(sink, adb_enabled=False)
    # What pyudev hands over for a product string with an invalid UTF-8 byte.
    odd = UsbFacts(
        "/sys/a", "ABC", "pci-1", Kind.ANDROID, "Pix\udcffel", "on \udcfe", {"product": "P\udcff"}
    )
    inv.usb_changed([odd])
    desc = sink.shown["ABC"]
    assert (desc.name, desc.description, dict(desc.metadata)) == (
        "Pix?el",
        "on ?",
        {"product": "P?"},
    )
    desc.name.encode("utf-8")  # strict: must not raise

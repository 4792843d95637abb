"""USB descriptor strings through pyusb, for what udev does not know.

The kernel caches a device's manufacturer, product and serial strings in
sysfs, so udev usually knows them; when it does not, these are read from the
device itself. That is blocking I/O (control transfers with a timeout), so it
runs in a worker thread, and it may fail for many ordinary reasons (no
permission on /dev/bus/usb, the device unplugged mid-read, no libusb): every
failure is logged and answered with what could be read, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

log = logging.getLogger(__name__)

BusAddress = tuple[int, int]  # (bus number, device number), udev's BUSNUM/DEVNUM


def _string(dev: Any, index: int) -> str | None:
    import usb.util

    if not index:
        return None  # the device declares no such string
    value = usb.util.get_string(dev, index)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _read_one(dev: Any) -> dict[str, str]:
    import usb.util

    out = {"vendor-id": f"{dev.idVendor:04x}", "product-id": f"{dev.idProduct:04x}"}
    try:
        for name, index in (
            ("manufacturer", dev.iManufacturer),
            ("product", dev.iProduct),
            ("serial", dev.iSerialNumber),
        ):
            value = _string(dev, index)
            if value is not None:
                out[name] = value
    finally:
        usb.util.dispose_resources(dev)
    return out


def read_descriptors(wanted: Collection[BusAddress]) -> dict[BusAddress, dict[str, str]]:
    """Descriptor strings of the wanted devices, one bus scan for all of them.

    Devices that cannot be read are missing from the answer or carry only the
    ids; the reason is logged.
    """
    if not wanted:
        return {}
    try:
        import usb.core

        devices = list(usb.core.find(find_all=True))
    except Exception as exc:  # NoBackendError, USBError, OSError: all mean "not now"
        log.warning("cannot list USB devices through libusb (%s); using what udev knows", exc)
        return {}
    found: dict[BusAddress, dict[str, str]] = {}
    for dev in devices:
        key = (int(dev.bus), int(dev.address))
        if key not in wanted:
            continue
        try:
            found[key] = _read_one(dev)
        except Exception as exc:  # USBError (permissions, gone), ValueError (no langid)
            log.warning(
                "cannot read the USB descriptors of bus %03d device %03d (%s); "
                "using what udev knows",
                key[0],
                key[1],
                exc,
            )
    for key in sorted(set(wanted) - set(found)):
        log.warning(
            "cannot read the USB descriptors of bus %03d device %03d (libusb does not list it); "
            "using what udev knows",
            *key,
        )
    return found

"""What udev knows of one device, as the ``[[match]]`` rules see it.

Kept apart from the udev source so that ``doctor`` can judge devices exactly
as the agent does without starting a monitor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from agent.discovery.match import DeviceInfo


class _Attributes(Mapping[str, str]):
    """A device's sysfs attributes, read only when asked for."""

    def __init__(self, device: Any) -> None:
        self._attrs = device.attributes

    def __getitem__(self, name: str) -> str:
        try:
            return str(self._attrs.asstring(name))
        except (KeyError, OSError, UnicodeDecodeError) as exc:
            raise KeyError(name) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._attrs.available_attributes))

    def __len__(self) -> int:
        return len(list(self._attrs.available_attributes))


def device_info(device: Any, ancestors: bool) -> DeviceInfo:
    """What the match rules see of a pyudev device (its ancestors too if asked)."""
    up = (
        [DeviceInfo(dict(a.properties), _Attributes(a)) for a in device.ancestors]
        if ancestors
        else []
    )
    return DeviceInfo(dict(device.properties), _Attributes(device), up)

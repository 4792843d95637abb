"""Sources: what is plugged in, turned into facts for the authority.

``udev`` watches USB devices, ``adb`` follows the adb server's phones, ``usb``
reads descriptor strings through pyusb, ``inventory`` merges them into one
resource per device, ``static`` reports the resources declared in the config,
and ``match`` is the grammar of the ``[[match]]`` rules. Sources never decide
anything about holds.
"""

from __future__ import annotations

from typing import Protocol

from agent.model import Description


class FactSink(Protocol):
    """Where resolved facts go (the Authority)."""

    def describe(self, desc: Description) -> None:
        """The resource is present, described so."""

    def vanish(self, resource_id: str) -> None:
        """The resource is no longer seen."""

    def set_health(self, resource_id: str, reason: str | None) -> None:
        """The resource is unusable (reason) or usable (None)."""

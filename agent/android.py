"""What Android phones print, read: ``getprop``, ``dumpsys battery``, ``pm list packages``.

Shared by the adb source (which describes phones) and the sessions (which
prepare and clean them); pure functions, tested on real output.
"""

from __future__ import annotations

import re

_PROP_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
_LEVEL_LINE = re.compile(r"^\s*(level|scale):\s*(\S+)\s*$")
_PACKAGE_LINE = re.compile(r"^package:(\S+)\s*$")


def parse_getprop(text: str) -> dict[str, str]:
    """``getprop`` output (``[name]: [value]`` lines) as a dict; other lines are skipped."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        match = _PROP_LINE.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


def parse_battery(text: str) -> int:
    """The charge in percent from ``dumpsys battery``; ValueError if it has none."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _LEVEL_LINE.match(line)
        if match:
            fields[match.group(1)] = match.group(2)
    level, scale = fields.get("level"), fields.get("scale", "100")
    if level is None:
        raise ValueError("dumpsys battery printed no level")
    if not level.isdigit() or not scale.isdigit() or int(scale) == 0:
        raise ValueError(f"dumpsys battery printed level {level!r} of scale {scale!r}")
    percent = round(int(level) * 100 / int(scale))
    if not 0 <= percent <= 100:
        raise ValueError(f"dumpsys battery printed level {level} of scale {scale}")
    return percent


def parse_packages(text: str) -> set[str]:
    """``pm list packages`` output (``package:NAME`` lines) as a set of names."""
    return {m.group(1) for line in text.splitlines() if (m := _PACKAGE_LINE.match(line.strip()))}

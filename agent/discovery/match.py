"""Which USB devices become resources, and how they are named: the ``[[match]]`` rules.

Pure functions over what udev knows of a device (properties, sysfs attributes
and ancestors), so they are tested without udev. A rule's ``when`` table maps
keys to glob patterns, all of which must match:

- ``ID_VENDOR_ID = "18d1"``: a udev property;
- ``"ATTR{product}" = "Pixel*"``: a sysfs attribute (udev rule syntax);
- ``"@ID_PATH" = "*-usb-0:3"``: the same on an ancestor. As in udev rules
  (``ATTRS``, ``KERNELS``...), all ``@`` keys of a rule must match one and the
  same ancestor.

A missing property or attribute never matches, not even ``*``. Hexadecimal
ids (vendor, product, interface classes...) compare case-insensitively.
The first matching rule wins; without one, the built-in rules make a device
with an ADB interface an ``android`` resource, one with the fastboot interface
an ``android`` resource in the bootloader, and ignore everything else.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.model import Kind, check_metadata_name, metadata_values

# USB interface class/subclass/protocol triples in udev's ID_USB_INTERFACES.
ADB_INTERFACE = ":ff4201:"
FASTBOOT_INTERFACE = ":ff4203:"
FASTBOOT_HEALTH = "the phone is in the bootloader (fastboot)"
IGNORE = "ignore"

# Keys whose values are hexadecimal: compared case-insensitively.
HEX_KEYS = frozenset(
    {
        "ID_VENDOR_ID",
        "ID_MODEL_ID",
        "ID_REVISION",
        "ID_USB_INTERFACES",
        "ID_USB_CLASS_FROM_DATABASE",
        "PRODUCT",
        "TYPE",
        "PCI_ID",
        "PCI_CLASS",
        "ATTR{idVendor}",
        "ATTR{idProduct}",
        "ATTR{bcdDevice}",
        "ATTR{bDeviceClass}",
        "ATTR{bDeviceSubClass}",
        "ATTR{bDeviceProtocol}",
        "ATTR{bInterfaceClass}",
        "ATTR{bInterfaceSubClass}",
        "ATTR{bInterfaceProtocol}",
        "ATTR{vendor}",
        "ATTR{device}",
        "ATTR{class}",
    }
)

_KEY = re.compile(r"^@?(?:[A-Za-z0-9_.]+|ATTR\{[A-Za-z0-9_.:-]+\})$")
_ATTR = re.compile(r"^ATTR\{(.+)\}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.-]+$")


class MatchRule(BaseModel):
    """``[[match]]``: which USB devices become resources, and how they are named.

    ``when`` maps udev properties (``ID_VENDOR_ID``), sysfs attributes
    (``ATTR{product}``) and ancestors' (``@ID_PATH``) to glob patterns (see the
    module docstring). ``name``, ``description`` and ``metadata`` values are
    templates: ``{ID_SERIAL_SHORT}``, ``{product}``, ``{usb-port}``...
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    kind: Literal["android", "usb", "ignore"]
    when: dict[str, str] = Field(min_length=1)
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("when")
    @classmethod
    def _check_when(cls, value: dict[str, str]) -> dict[str, str]:
        for key, pattern in value.items():
            check_key(key)
            try:
                check_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from exc
        return value

    @field_validator("name", "description")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value

    _strings = field_validator("metadata", mode="before")(metadata_values)

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            check_metadata_name(name)
            template_fields(template)
        return value


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What udev knows of one device; ``ancestors`` nearest first."""

    properties: Mapping[str, str]
    attributes: Mapping[str, str] = field(default_factory=dict)
    ancestors: Sequence[DeviceInfo] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a device is: its kind, the rule that said so (None: built-in), its health."""

    kind: Kind
    rule: MatchRule | None = None
    health: str | None = None


# ----------------------------------------------------------------- checking


def check_key(key: str) -> str:
    """A ``when`` key, or ValueError saying what is wrong with it."""
    if not _KEY.match(key):
        raise ValueError(
            f"match key {key!r} must be a udev property (ID_VENDOR_ID), a sysfs attribute "
            "(ATTR{idVendor}), either with a leading '@' to match an ancestor"
        )
    return key


def check_pattern(pattern: str) -> str:
    """A glob, or ValueError: empty, or an unclosed '['."""
    if not pattern:
        raise ValueError("an empty pattern matches nothing; use '*' for any value")
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            # fnmatch takes ']' right after '[' or '[!' as a literal member.
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                raise ValueError(f"pattern {pattern!r} has an unclosed '['")
            i = close
        i += 1
    return pattern


def template_fields(template: str) -> list[str]:
    """The ``{FIELD}`` names in a template; ValueError if it is malformed."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        hint = "write '{{' or '}}' for a literal brace"
        raise ValueError(f"template {template!r}: {exc} ({hint})") from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or not _FIELD.match(name):
            raise ValueError(
                f"template {template!r}: {{{name}}} must name a udev property or a metadata name"
            )
        if spec or conversion:
            raise ValueError(f"template {template!r}: {{{name}}} takes no format or conversion")
        names.append(name)
    return names


# ----------------------------------------------------------------- matching


def _value(device: DeviceInfo, key: str) -> str | None:
    attr = _ATTR.match(key)
    if attr:
        return device.attributes.get(attr.group(1))
    return device.properties.get(key)


def _matches(device: DeviceInfo, key: str, pattern: str) -> bool:
    value = _value(device, key)
    if value is None:
        return False
    if key in HEX_KEYS:
        return fnmatchcase(value.lower(), pattern.lower())
    return fnmatchcase(value, pattern)


def rule_matches(when: Mapping[str, str], device: DeviceInfo) -> bool:
    """Whether every condition holds (``@`` ones all on one ancestor)."""
    own = [(k, p) for k, p in when.items() if not k.startswith("@")]
    up = [(k[1:], p) for k, p in when.items() if k.startswith("@")]
    if not all(_matches(device, k, p) for k, p in own):
        return False
    if not up:
        return True
    return any(all(_matches(a, k, p) for k, p in up) for a in device.ancestors)


def needs_ancestors(rules: Sequence[MatchRule]) -> bool:
    """Whether any rule looks at ancestors (else they need not be read)."""
    return any(k.startswith("@") for r in rules for k in r.when)


def classify(device: DeviceInfo, rules: Sequence[MatchRule]) -> Verdict | None:
    """What the device is, or None to ignore it."""
    interfaces = device.properties.get("ID_USB_INTERFACES", "").lower()
    fastboot = FASTBOOT_INTERFACE in interfaces and ADB_INTERFACE not in interfaces
    for rule in rules:
        if rule_matches(rule.when, device):
            if rule.kind == IGNORE:
                return None
            kind = Kind(rule.kind)
            health = FASTBOOT_HEALTH if kind is Kind.ANDROID and fastboot else None
            return Verdict(kind, rule, health)
    if ADB_INTERFACE in interfaces:
        return Verdict(Kind.ANDROID)
    if fastboot:
        return Verdict(Kind.ANDROID, health=FASTBOOT_HEALTH)
    return None


# ---------------------------------------------------------------- rendering


def render(template: str, lookup: Callable[[str], str | None]) -> str:
    """Fill ``{FIELD}``s; an unknown field becomes empty. Whitespace runs collapse."""
    out: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name:
            out.append(lookup(name) or "")
    return " ".join("".join(out).split())

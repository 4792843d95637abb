"""The ``[[match]]`` rules and how a matched device is described, without udev."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError, load_settings
from agent.discovery.match import (
    FASTBOOT_HEALTH,
    DeviceInfo,
    MatchRule,
    Verdict,
    classify,
    needs_ancestors,
    render,
    rule_matches,
    template_fields,
)
from agent.discovery.udev import Seen, to_facts, unescape
from agent.model import Kind

PHONE = {
    "ID_VENDOR_ID": "18d1",
    "ID_MODEL_ID": "4ee7",
    "ID_SERIAL_SHORT": "ABC123",
    "ID_USB_INTERFACES": ":060101:ff4201:",
    "ID_PATH": "pci-0000:00:14.0-usb-0:2.3",
    "DRIVER": "usb",
}
HUB = DeviceInfo(
    {"ID_PATH": "pci-0000:00:14.0-usb-0:2", "ID_VENDOR_ID": "05e3", "DRIVER": "usb"},
    {"product": "USB2.0 Hub"},
)
CONTROLLER = DeviceInfo({"DRIVER": "xhci_hcd", "PCI_ID": "8086:A36D"}, {"vendor": "0x8086"})


def rule(**kwargs: Any) -> MatchRule:
    kwargs.setdefault("kind", "usb")
    return MatchRule.model_validate(kwargs)


def device(props: dict[str, str] | None = None, **attrs: str) -> DeviceInfo:
    return DeviceInfo(PHONE if props is None else props, attrs, (HUB, CONTROLLER))


# ------------------------------------------------------------------ matching


def test_property_globs_must_all_match() -> None:
    assert rule_matches({"ID_VENDOR_ID": "18d1", "ID_PATH": "*-usb-0:2.*"}, device())
    assert not rule_matches({"ID_VENDOR_ID": "18d1", "ID_PATH": "*-usb-0:4*"}, device())


def test_hex_ids_compare_case_insensitively_other_values_do_not() -> None:
    assert rule_matches({"ID_VENDOR_ID": "18D1", "ID_USB_INTERFACES": "*:FF4201:*"}, device())
    assert rule_matches({"ATTR{idVendor}": "18D1"}, device(idVendor="18d1"))
    assert not rule_matches({"DRIVER": "USB"}, device())


def test_sysfs_attributes_use_attr_braces() -> None:
    assert rule_matches({"ATTR{product}": "Pixel*"}, device(product="Pixel 7"))
    assert not rule_matches({"ATTR{product}": "Galaxy*"}, device(product="Pixel 7"))


def test_a_missing_value_never_matches_even_a_star() -> None:
    assert not rule_matches({"ID_MODEL": "*"}, device())
    assert not rule_matches({"ATTR{serial}": "*"}, device())


def test_ancestor_keys_must_match_one_and_the_same_ancestor() -> None:
    assert rule_matches({"@ID_PATH": "*-usb-0:2", "@ATTR{product}": "*Hub"}, device())
    assert rule_matches({"@DRIVER": "xhci_hcd"}, device())
    # DRIVER=usb is the hub's, PCI_ID the controller's: no single ancestor has both.
    assert not rule_matches({"@DRIVER": "usb", "@PCI_ID": "8086:*"}, device())
    # '@' looks only upward: the device's own ID_PATH is not an ancestor's.
    assert not rule_matches({"@ID_PATH": PHONE["ID_PATH"]}, device())
    assert needs_ancestors([rule(when={"@DRIVER": "x"})])
    assert not needs_ancestors([rule(when={"DRIVER": "x"})])


# ------------------------------------------------------------ classification


def test_without_rules_adb_is_android_fastboot_is_unhealthy_and_the_rest_ignored() -> None:
    assert classify(device(), []) == Verdict(Kind.ANDROID)
    fastboot = device(PHONE | {"ID_USB_INTERFACES": ":ff4203:"})
    assert classify(fastboot, []) == Verdict(Kind.ANDROID, health=FASTBOOT_HEALTH)
    assert classify(device({"ID_USB_INTERFACES": ":090000:"}), []) is None  # hub
    assert classify(device({"ID_USB_INTERFACES": ":030101:"}), []) is None  # keyboard
    assert classify(device({"ID_VENDOR_ID": "0781"}), []) is None  # no interfaces at all


def test_first_matching_rule_wins_and_ignore_hides_a_phone() -> None:
    first = rule(kind="usb", when={"ID_VENDOR_ID": "18d1"})
    second = rule(kind="android", when={"ID_VENDOR_ID": "*"})
    assert classify(device(), [first, second]) == Verdict(Kind.USB, first)
    assert classify(device(), [rule(kind="ignore", when={"ID_SERIAL_SHORT": "ABC*"})]) is None
    # A rule that does not match leaves the built-in rules in charge.
    assert classify(device(), [rule(when={"ID_VENDOR_ID": "0000"})]) == Verdict(Kind.ANDROID)


def test_an_android_rule_on_a_fastboot_device_keeps_the_bootloader_health() -> None:
    android = rule(kind="android", when={"ID_VENDOR_ID": "18d1"})
    fastboot = device(PHONE | {"ID_USB_INTERFACES": ":ff4203:"})
    assert classify(fastboot, [android]) == Verdict(Kind.ANDROID, android, FASTBOOT_HEALTH)


# ----------------------------------------------------------------- templates


def test_render_fills_fields_and_drops_unknown_ones() -> None:
    values = {"product": "Pixel 7", "usb-port": "1-2"}
    assert render("{product} at {usb-port}", values.get) == "Pixel 7 at 1-2"
    assert render("{product} {nothing} x", values.get) == "Pixel 7 x"
    assert render("{{literal}}", values.get) == "{literal}"
    assert template_fields("{ID_SERIAL_SHORT}-{usb-port}") == ["ID_SERIAL_SHORT", "usb-port"]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{product", "expected '}'"),
        ("{}", "must name a udev property"),
        ("{product!r}", "no format or conversion"),
        ("{product:>10}", "no format or conversion"),
    ],
)
def test_bad_templates_are_refused(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        template_fields(template)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('kind = "phone"\nwhen = { ID_VENDOR_ID = "18d1" }', r"match\[0\]\.kind"),
        ('kind = "usb"', r"match\[0\]\.when: Field required"),
        ('kind = "usb"\nwhen = {}', r"match\[0\]\.when: .*at least 1"),
        ('kind = "usb"\nwhen = { "id vendor" = "1" }', "match key 'id vendor'"),
        ('kind = "usb"\nwhen = { ID_PATH = "usb-[0-9" }', "ID_PATH: pattern .* unclosed"),
        ('kind = "usb"\nwhen = { ID_PATH = "" }', "empty pattern"),
        ('kind = "usb"\nwhen = { DRIVER = "usb" }\nname = "{product"', r"match\[0\]\.name"),
        ('kind = "usb"\nwhen = { DRIVER = "usb" }\nmetadata = { Rack = "A" }', "'Rack'"),
        ('kind = "usb"\nwhen = { DRIVER = "usb" }\nmetadata = { rack = "{}" }', "metadata"),
        ('kind = "usb"\nwhen = { DRIVER = "usb" }\ncolour = "red"', "colour: unknown key"),
    ],
)
def test_config_errors_name_the_rule_and_the_problem(
    tmp_path: Path, toml: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, "[[match]]\n" + toml + "\n"))


def test_a_valid_rule_loads(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            '[[match]]\nkind = "usb"\nwhen = { ID_VENDOR_ID = "16c0", "@ID_PATH" = "*-usb-0:3" }\n'
            'name = "relay {ID_SERIAL_SHORT}"\nmetadata = { role = "relay-{usb-port}" }\n',
        )
    )
    assert settings.match[0].when == {"ID_VENDOR_ID": "16c0", "@ID_PATH": "*-usb-0:3"}


# ------------------------------------------------------------- descriptions


def seen(
    props: dict[str, str],
    attrs: dict[str, str] | None = None,
    verdict: Verdict | None = None,
    extra: dict[str, str] | None = None,
) -> Seen:
    return Seen(
        "/sys/devices/usb1/1-2",
        "1-2",
        props,
        attrs or {},
        verdict or Verdict(Kind.ANDROID),
        extra or {},
    )


def test_facts_take_metadata_from_udev_properties_and_attributes() -> None:
    facts = to_facts(
        seen(
            PHONE | {"ID_VENDOR_ID": "18D1", "ID_MODEL_ENC": "Pixel\\x207"},
            {"manufacturer": "Google", "serial": "ignored-when-udev-has-it"},
        )
    )
    assert facts.serial == "ABC123"
    assert facts.port == "pci-0000:00:14.0-usb-0:2.3"
    assert facts.name == "Google Pixel 7"
    assert facts.kind is Kind.ANDROID
    assert facts.metadata == {
        "vendor-id": "18d1",
        "product-id": "4ee7",
        "manufacturer": "Google",
        "product": "Pixel 7",
        "serial": "ABC123",
        "usb-port": "pci-0000:00:14.0-usb-0:2.3",
    }
    assert "on USB port pci-0000:00:14.0-usb-0:2.3" in facts.description


def test_without_id_path_the_port_is_the_kernel_name() -> None:
    facts = to_facts(seen({"ID_VENDOR_ID": "18d1", "ID_MODEL_ID": "4ee7"}))
    assert facts.port == "1-2"
    assert facts.metadata["usb-port"] == "1-2"
    assert facts.serial is None
    assert facts.name == "USB device 18d1:4ee7"


def test_pyusb_strings_fill_only_what_udev_lacks() -> None:
    facts = to_facts(
        seen(
            {"ID_VENDOR_ID": "18d1", "ID_MODEL_ID": "4ee7"},
            {"product": "Pixel 7"},
            extra={"manufacturer": "Google", "product": "from usb", "serial": "Z1"},
        )
    )
    assert facts.metadata["product"] == "Pixel 7"
    assert facts.metadata["manufacturer"] == "Google"
    assert facts.metadata["serial"] == "Z1"
    assert facts.serial is None  # identity comes from udev, which pyusb's string must not change


def test_a_serial_that_cannot_be_an_id_is_not_used_as_one() -> None:
    assert to_facts(seen({"ID_SERIAL_SHORT": "has space"})).serial is None
    assert to_facts(seen({"ID_SERIAL_SHORT": "-leading-dash"})).serial is None


def test_rule_templates_name_describe_and_add_metadata() -> None:
    r = rule(
        kind="usb",
        when={"ID_VENDOR_ID": "18d1"},
        name="bench {ID_SERIAL_SHORT}",
        description="{product} in slot {usb-port}",
        metadata={"rack": "A", "slot": "{usb-port}", "product": "custom"},
    )
    facts = to_facts(seen(PHONE, {"product": "Pixel 7"}, Verdict(Kind.USB, r)))
    assert facts.name == "bench ABC123"
    assert facts.description == "Pixel 7 in slot pci-0000:00:14.0-usb-0:2.3"
    assert facts.metadata["rack"] == "A"
    assert facts.metadata["slot"] == "pci-0000:00:14.0-usb-0:2.3"
    assert facts.metadata["product"] == "custom"  # a rule may override standard metadata
    assert facts.kind is Kind.USB


def test_unescape_decodes_udev_hex_escapes() -> None:
    assert unescape("Pixel\\x207\\x20") == "Pixel 7"

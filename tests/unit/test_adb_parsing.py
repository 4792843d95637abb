"""What the adb source makes of adb's and a phone's text output."""

from __future__ import annotations

import pytest

from agent.android import parse_battery, parse_getprop, parse_packages
from agent.discovery.adb import (
    MAX_VALUE,
    clean_value,
    display_name,
    is_remote,
    props_metadata,
)
from agent.discovery.adb_host import parse_device_list
from tests.fakes.adbd import DEFAULT_PROPS, dumpsys_battery

GETPROP = """\
[dalvik.vm.heapsize]: [512m]
[ro.build.fingerprint]: [google/panther/panther:14/UQ1A/1:user/release-keys]
[ro.product.model]: [Pixel 7]
[ro.empty]: []
[persist.sys.multi]: [first line
second line]
[ro.with.brackets]: [a [b] c]
"""


def test_getprop_lines_become_props_and_the_rest_is_skipped() -> None:
    props = parse_getprop(GETPROP)
    assert props == {
        "dalvik.vm.heapsize": "512m",
        "ro.build.fingerprint": "google/panther/panther:14/UQ1A/1:user/release-keys",
        "ro.product.model": "Pixel 7",
        "ro.empty": "",
        "ro.with.brackets": "a [b] c",
    }


def test_getprop_with_crlf_line_ends() -> None:  # old devices' shells answer \r\n
    assert parse_getprop("[ro.product.model]: [Pixel 7]\r\n[ro.x]: [1]\r\n") == {
        "ro.product.model": "Pixel 7",
        "ro.x": "1",
    }


@pytest.mark.parametrize(
    "text", ["", "garbage\n", "\x00\xff]]: [[", "/system/bin/sh: getprop: not found"]
)
def test_getprop_garbage_gives_nothing(text: str) -> None:
    assert parse_getprop(text) == {}


def test_props_become_metadata_with_fallbacks_and_cleaning() -> None:
    assert props_metadata(DEFAULT_PROPS) == {
        "manufacturer": "Google",
        "model": "Pixel 7",
        "device": "panther",
        "android-release": "14",
        "sdk": "34",
        "abi": "arm64-v8a",
        "fingerprint": DEFAULT_PROPS["ro.build.fingerprint"],
    }
    vendor_only = {
        "ro.product.model": "  ",
        "ro.product.vendor.model": "SM-G991B",
        "ro.product.vendor.manufacturer": "samsung\x1b[0m",
        "ro.build.version.sdk": "3\n3",
    }
    assert props_metadata(vendor_only) == {
        "model": "SM-G991B",
        "manufacturer": "samsung[0m",
        "sdk": "33",
    }


def test_values_are_bounded() -> None:
    assert clean_value("x" * 1000) == "x" * MAX_VALUE
    assert clean_value(" \t a\u200bb \x07") == "ab"


@pytest.mark.parametrize(
    ("text", "percent"),
    [
        (dumpsys_battery(85), 85),
        (dumpsys_battery(0), 0),
        ("Current Battery Service state:\r\n  level: 100\r\n  scale: 100\r\n", 100),
        ("  level: 25\n  scale: 50\n", 50),
        ("  level: 7\n", 7),  # no scale line: percent
    ],
)
def test_battery_level(text: str, percent: int) -> None:
    assert parse_battery(text) == percent


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "printed no level"),
        ("Can't find service: battery\n", "printed no level"),
        ("  level: many\n  scale: 100\n", "level 'many' of scale '100'"),
        ("  level: 5\n  scale: 0\n", "level '5' of scale '0'"),
        ("  level: 250\n  scale: 100\n", "level 250 of scale 100"),
        ("  level: -1\n", "level '-1'"),
    ],
)
def test_battery_garbage_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_battery(text)


def test_device_list_lines() -> None:
    text = (
        "ABC123\tdevice\n"
        "127.0.0.1:6101\toffline\n"
        "\n"
        "R58M\tno permissions (user in plugdev group; are your udev rules wrong?); see [url]\n"
        "emulator-5554\tunauthorized\n"
        "no tab here\n"
        "\tdevice\n"
    )
    assert parse_device_list(text) == [
        ("ABC123", "device"),
        ("127.0.0.1:6101", "offline"),
        ("R58M", "no permissions"),
        ("emulator-5554", "unauthorized"),
    ]
    assert parse_device_list("") == []


@pytest.mark.parametrize(
    ("serial", "remote"),
    [
        ("127.0.0.1:6101", True),
        ("[::1]:5555", True),
        ("adb-R58M123-xYz._adb-tls-connect._tcp", True),
        ("ABC123", False),
        ("emulator-5554", False),
    ],
)
def test_remote_serials(serial: str, remote: bool) -> None:
    assert is_remote(serial) is remote


def test_display_name() -> None:
    assert display_name("S1", {"manufacturer": "Google", "model": "Pixel 7"}) == "Google Pixel 7"
    assert display_name("S1", {"manufacturer": "samsung", "model": "Samsung SM-G991B"}) == (
        "Samsung SM-G991B"
    )
    assert display_name("S1", {"model": "Pixel 7"}) == "Pixel 7"
    assert display_name("S1", {"manufacturer": "Google"}) == "S1"


def test_package_lists_as_pm_prints_them() -> None:
    text = "package:com.example.app\npackage:org.lab.tool \nnot a package\n\npackage:\n"
    assert parse_packages(text) == {"com.example.app", "org.lab.tool"}
    assert parse_packages("") == set()

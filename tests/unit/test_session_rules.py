"""The [[session]] tables: what the config accepts, what it refuses (naming the key), and
which resources a table matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_settings
from agent.config.sessions import Battery, Command, SessionRule, rule_for
from agent.model import Kind, Resource


def load(tmp_path: Path, text: str) -> SessionRule:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    [rule] = load_settings(path).session
    return rule


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


FULL = """
[[session]]
kind = "android"
when = { model = "Pixel*" }
lock_wait = 100
quarantine_after = 3
provision = [
  { step = "boot-completed", timeout = 120 },
  { step = "battery", min = 30 },
  { step = "unlock-screen" },
  { step = "command", name = "check", run = ["sh", "-c", "true"], timeout = 60 },
]
teardown = [
  { step = "uninstall-new-packages", keep = ["com.example.keep"] },
  { step = "clear-logcat" },
  { step = "reboot" },
  { step = "command", run = ["true"], timeout = 60 },
]
"""


def test_the_example_of_the_issue_loads_with_defaults(tmp_path: Path) -> None:
    rule = load(tmp_path, FULL)
    assert rule.kind == "android" and rule.lock_wait == 100 and rule.quarantine_after == 3
    assert [s.step for s in rule.provision] == [
        "boot-completed",
        "battery",
        "unlock-screen",
        "command",
    ]
    battery = rule.provision[1]
    assert isinstance(battery, Battery) and battery.min == 30 and battery.timeout == 30
    check = rule.provision[3]
    assert isinstance(check, Command) and check.label == "check"
    assert [s.label for s in rule.teardown] == [
        "uninstall-new-packages",
        "clear-logcat",
        "reboot",
        "command",
    ]


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('provision = [{ step = "dance" }]', "session[0].provision[0]", "dance"),
        ('provision = [{ step = "command", name = "x" }]', "run", "Field required"),
        ("lock_wait = 115", "session[0].lock_wait", "under 115 seconds"),
        ("lock_wait = 300", "session[0].lock_wait", "Jenkins stops waiting"),
        ('provision = [{ step = "battery", min = -5 }]', "min", "greater than or equal to 0"),
        ('provision = [{ step = "battery" }]', "min", "Field required"),
        ('provision = [{ step = "command", run = [] }]', "run", "at least 1"),
        ('provision = [{ step = "boot-completed", timeout = 0 }]', "timeout", "greater than 0"),
        ("quarantine_after = 0", "session[0].quarantine_after", "greater than or equal to 1"),
        ('kind = "usb"\nprovision = [{ step = "reboot" }]', "session[0]", "for android phones"),
        ('when = { model = "" }', "session[0].when", "empty pattern"),
        ('provision = [{ step = "command", run = ["x"], shell = true }]', "shell", "unknown key"),
    ],
)
def test_bad_tables_are_refused_naming_the_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    message = refused(tmp_path, f"[[session]]\n{text}\n")
    assert key in message and problem in message, message
    assert str(tmp_path / "agent.toml") in message


def phone(model: str, kind: Kind = Kind.ANDROID) -> Resource:
    return Resource("p", model, kind, metadata={"model": model})


def test_the_first_matching_table_wins_and_none_means_no_session() -> None:
    pixels = SessionRule(kind="android", when={"model": "Pixel*"}, lock_wait=1)
    phones = SessionRule(kind="android", lock_wait=2)
    rules = [pixels, phones]
    assert rule_for(rules, phone("Pixel 7")) is pixels
    assert rule_for(rules, phone("Galaxy")) is phones
    assert rule_for(rules, phone("Pixel 7", Kind.USB)) is None
    assert rule_for([], phone("Pixel 7")) is None
    # A pattern on a name the resource lacks never matches, not even "*".
    assert rule_for([SessionRule(when={"sdk": "*"})], phone("Pixel 7")) is None

"""The config file: defaults, every section, and an error naming file, key and problem."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import agent.config
from agent.config import (
    ConfigError,
    ConfigProblem,
    Settings,
    find_config,
    load_settings,
    parse_hostport,
    resolve_state_dir,
    short_hostname,
)

FULL = """
[agent]
node = "lab-7"
state_dir = "/srv/agent-state"
identity = "resource-agent://lab-7.example"
grace_period = 45          # an integer is a number of seconds too
log_level = "debug"

[server]
listen = "[::1]:9000"

[udev]
enabled = false

[adb]
enabled = false
server = "10.0.0.2:5038"
allow_remote = true
battery_interval = 60.5

[[coordinator]]
url = "https://jenkins.example/ci"
node = "lab-7-agent"
tree = "devices"
user = "agent"
token_file = "/etc/resource-agent/token"
ca_file = "/etc/ssl/ca.pem"
verify = false
timeout = 3
batch_window = 0.2
retry_max = 30

[[coordinator]]
url = "http://other:8080/"

[[resource]]
id = "relay-1"
name = "Power relay"
description = "USB relay board on the bench"
metadata = { "location" = "bench-3", "relay.channels" = "4" }

[[resource]]
id = "license:ABC@host"

[[match]]
kind = "android"
when = { ID_VENDOR_ID = "18d1" }
name = "Pixel {ID_SERIAL_SHORT}"
metadata = { "vendor" = "google" }
"""


def write(tmp_path: Path, text: str | bytes, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def error(path: Path) -> str:
    """The message of the ConfigError that loading ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    if "\n" in message:  # several problems: one per line, each naming its key
        assert message.startswith(f"config {path} has "), message
    else:
        assert message.startswith(f"config {path}: "), message
    return message


# --------------------------------------------------------------- defaults


def test_defaults_without_file() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.agent.node == socket.gethostname().split(".")[0]
    assert settings.agent.node == short_hostname()
    assert settings.agent.state_dir is None
    assert settings.agent.grace_period == 30.0
    assert settings.agent.log_level == "info"
    assert settings.agent.client_identity == f"resource-agent://{socket.gethostname()}"
    assert settings.server.listen == "0.0.0.0:8080"
    assert settings.server.address == ("0.0.0.0", 8080)
    assert settings.udev.enabled
    assert settings.adb.enabled
    assert settings.adb.server == "127.0.0.1:5037"
    assert not settings.adb.allow_remote
    assert settings.coordinator == []
    assert settings.resource == []
    assert settings.match == []


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()
    assert load_settings(write(tmp_path, "# nothing but a comment\n")) == Settings()


def test_every_section_parsed(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL))
    assert s.agent.node == "lab-7"
    assert s.agent.state_dir == "/srv/agent-state"
    assert s.agent.client_identity == "resource-agent://lab-7.example"
    assert s.agent.grace_period == 45.0
    assert s.agent.log_level == "debug"
    assert s.server.address == ("::1", 9000)
    assert not s.udev.enabled
    assert not s.adb.enabled
    assert s.adb.server == "10.0.0.2:5038"
    assert s.adb.allow_remote
    assert s.adb.battery_interval == 60.5
    first, second = s.coordinator
    assert first.url == "https://jenkins.example/ci/"  # a root URL ends in '/'
    assert first.node == "lab-7-agent"
    assert first.tree == "devices"
    assert (first.user, first.token_file) == ("agent", "/etc/resource-agent/token")
    assert first.ca_file == "/etc/ssl/ca.pem"
    assert not first.verify
    assert first.timeout == 3.0
    assert first.batch_window == 0.2
    assert first.retry_max == 30.0
    assert second.url == "http://other:8080/"
    assert second.node is None
    assert second.tree == "external-resources"
    assert second.user is None
    assert second.verify
    relay, license_ = s.resource
    assert relay.id == "relay-1"
    assert relay.name == "Power relay"
    assert relay.description == "USB relay board on the bench"
    assert relay.metadata == {"location": "bench-3", "relay.channels": "4"}
    assert license_.id == "license:ABC@host"
    assert license_.name is None
    assert license_.metadata == {}
    (rule,) = s.match
    assert rule.kind == "android"
    assert rule.when == {"ID_VENDOR_ID": "18d1"}
    assert rule.name == "Pixel {ID_SERIAL_SHORT}"


def test_listen_without_host_binds_all(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[server]\nlisten = ":0"\n'))
    assert s.server.address == ("0.0.0.0", 0)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.server.listen = "1.2.3.4:1"  # type: ignore[misc]


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys, at every depth
        ("colour = 'red'\n", "colour: unknown key"),
        ("[agent]\nnodee = 'x'\n", "agent.nodee: unknown key"),
        ("[sever]\nlisten = ':1'\n", "sever: unknown key"),
        ("[[resource]]\nid = 'a'\ncolour = 'red'\n", "resource[0].colour: unknown key"),
        (
            "[[coordinator]]\nurl = 'http://j/'\n"
            "[[coordinator]]\nurl = 'http://k/'\npasword = 'x'\n",
            "coordinator[1].pasword: unknown key",
        ),
        # wrong types: TOML has real ones, so nothing is coerced
        ("[agent]\ngrace_period = '30'\n", "agent.grace_period: Input should be a valid number"),
        ("[agent]\ngrace_period = true\n", "agent.grace_period: Input should be a valid number"),
        ("[udev]\nenabled = 'yes'\n", "udev.enabled: Input should be a valid boolean"),
        ("[server]\nlisten = 8080\n", "server.listen: Input should be a valid string"),
        ("agent = 5\n", "agent: Input should be"),
        ("[coordinator]\nurl = 'http://j/'\n", "coordinator: Input should be a valid list"),
        (
            "[[resource]]\nid = 'a'\nmetadata = { slots = [4] }\n",
            "resource[0].metadata.slots: Input should be a valid string",
        ),
        # bad values
        ("[agent]\ngrace_period = 0\n", "agent.grace_period: Input should be greater than 0"),
        ("[agent]\ngrace_period = -1.5\n", "agent.grace_period: Input should be greater than 0"),
        ("[agent]\ngrace_period = nan\n", "agent.grace_period: "),
        ("[agent]\ngrace_period = 1e9\n", "agent.grace_period: Input should be less than or equal"),
        ("[agent]\nlog_level = 'verbose'\n", "agent.log_level: Input should be 'debug'"),
        ("[agent]\nnode = ''\n", "agent.node: String should have at least 1 character"),
        ("[server]\nlisten = 'localhost'\n", "server.listen: expected HOST:PORT, got 'localhost'"),
        ("[server]\nlisten = '0.0.0.0:http'\n", "server.listen: expected HOST:PORT"),
        ("[server]\nlisten = '0.0.0.0:99999'\n", "server.listen: port 99999 is out of range"),
        ("[server]\nlisten = '0.0.0.0:\u0668\u0660'\n", "server.listen: expected HOST:PORT"),
        ("[adb]\nserver = ':5037'\n", "adb.server: expected HOST:PORT of the adb server"),
        ("[adb]\nserver = '127.0.0.1:0'\n", "adb.server: expected HOST:PORT of the adb server"),
        ("[[coordinator]]\nurl = 'ftp://j/'\n", "coordinator[0].url: expected an http(s) URL"),
        ("[[coordinator]]\nurl = 'jenkins:8080'\n", "coordinator[0].url: expected an http(s) URL"),
        ("[[coordinator]]\nurl = 'http://'\n", "coordinator[0].url: expected an http(s) URL"),
        ("[[coordinator]]\nurl = 'http://:8080/'\n", "coordinator[0].url: expected an http(s)"),
        (
            "[[coordinator]]\nurl = 'http://j:port/'\n",
            "coordinator[0].url: 'http://j:port/': Port could not be cast to integer",
        ),
        (
            "[[coordinator]]\nurl = 'http://j:99999/'\n",
            "coordinator[0].url: 'http://j:99999/': Port",
        ),
        (
            "[[coordinator]]\nurl = 'http://j/?token=x'\n",
            "coordinator[0].url: a Jenkins root URL has no query or fragment",
        ),
        ("[[coordinator]]\nurl = 'http://j/#top'\n", "coordinator[0].url: a Jenkins root URL has"),
        ("[[coordinator]]\nnode = 'x'\n", "coordinator[0].url: Field required"),
        (
            "[[coordinator]]\nurl = 'http://j/'\nuser = 'me'\n",
            "coordinator[0]: user and token_file go together",
        ),
        (
            "[[coordinator]]\nurl = 'http://j/'\nbatch_window = -1\n",
            "coordinator[0].batch_window: Input should be greater than or equal to 0",
        ),
        (
            "[[resource]]\nid = 'a'\n[[resource]]\nid = 'b'\n[[resource]]\nid = 'a'\n",
            "resource[2].id: 'a' is declared twice (first as resource[0].id)",
        ),
        ("[[resource]]\nid = 'has space'\n", "resource[0].id: String should match pattern"),
        ("[[resource]]\nid = ''\n", "resource[0].id: String should match pattern"),
        ("[[resource]]\nname = 'x'\n", "resource[0].id: Field required"),
        (
            "[[resource]]\nid = 'a'\nmetadata = { 'Bad Name' = 'x' }\n",
            "resource[0].metadata: metadata name 'Bad Name' must be lower-case",
        ),
        (
            "[[resource]]\nid = 'a'\nmetadata = { '-lead' = 'x' }\n",
            "resource[0].metadata: metadata name '-lead' must be",
        ),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    message = error(write(tmp_path, text))
    assert expected in message


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "[agent]\ngrace_period = 0\nbogus = 1\n[udev]\nx = 1\n")
    message = error(path)
    assert message.splitlines() == [
        f"config {path} has 3 problems:",
        "  agent.grace_period: Input should be greater than 0",
        "  agent.bogus: unknown key",
        "  udev.x: unknown key",
    ]


def test_numbers_and_booleans_in_metadata_become_strings(tmp_path: Path) -> None:
    text = (
        "[[resource]]\nid = 'a'\nmetadata = { api = 34, rooted = true, ratio = 1.5 }\n"
        "[[match]]\nkind = 'usb'\nwhen = { ID_VENDOR_ID = '18d1' }\nmetadata = { rack = 3 }\n"
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.resource[0].metadata == {"api": "34", "rooted": "true", "ratio": "1.5"}
    assert settings.match[0].metadata == {"rack": "3"}
    assert "resource[0].metadata.when: Input should be a valid string" in error(
        write(tmp_path, "[[resource]]\nid = 'a'\nmetadata = { when = 1979-05-27 }\n")
    )


@pytest.mark.parametrize("url", ["http://jenkins.example/ci /", "http://jenkins.example/\tx/"])
def test_a_coordinator_url_with_a_space_is_refused(tmp_path: Path, url: str) -> None:
    message = error(write(tmp_path, f"[[coordinator]]\nurl = {json.dumps(url)}\n"))
    assert "coordinator[0].url: a URL has no spaces or control characters" in message


def test_a_missing_config_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml")
    assert str(info.value) == f"config {tmp_path / 'nope.toml'} does not exist"
    assert info.value.problem is ConfigProblem.MISSING


def test_invalid_toml(tmp_path: Path) -> None:
    message = error(write(tmp_path, "[agent]\nnode = 'x'\nnode = 'y'\n"))
    assert "not valid TOML" in message
    assert "line 3" in message
    message = error(write(tmp_path, "[agent\n"))
    assert "not valid TOML" in message
    assert "line 1" in message


def test_not_utf8(tmp_path: Path) -> None:
    message = error(write(tmp_path, b"[agent]\nnode = '\xff'\n"))
    assert "not valid TOML: not UTF-8 text" in message
    assert "byte 16" in message


def test_directory_as_file(tmp_path: Path) -> None:
    message = error(tmp_path)
    assert "cannot read: Is a directory" in message


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        ("127.0.0.1:8080", "", ("127.0.0.1", 8080)),
        ("host.example:1", "", ("host.example", 1)),
        ("[::1]:65535", "", ("::1", 65535)),
        (":8080", "0.0.0.0", ("0.0.0.0", 8080)),
        (":8080", "", ("", 8080)),
    ],
)
def test_parse_hostport(value: str, default: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(value, default) == expected


@pytest.mark.parametrize("value", ["", "8080", "host:", "host:-1", "host:+80", "host: 80"])
def test_parse_hostport_refuses(value: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_hostport(value)
    assert str(info.value) == f"expected HOST:PORT, got {value!r}"


def test_parse_hostport_port_range() -> None:
    with pytest.raises(ValueError, match="port 65536 is out of range 0-65535"):
        parse_hostport("host:65536")


# -------------------------------------------------------- which file, where


def test_find_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit.toml"
    from_env = tmp_path / "env.toml"
    system = write(tmp_path, "", "system.toml")
    monkeypatch.setattr(agent.config, "DEFAULT_CONFIG", system)
    monkeypatch.setenv("RESOURCE_AGENT_CONFIG", str(from_env))
    # --config wins, even over a variable and an existing system file; it need
    # not exist yet (loading it then says so).
    assert find_config(explicit) == explicit
    assert find_config(None) == from_env
    monkeypatch.setenv("RESOURCE_AGENT_CONFIG", "")  # empty: as if unset
    assert find_config(None) == system
    monkeypatch.delenv("RESOURCE_AGENT_CONFIG")
    assert find_config(None) == system
    system.unlink()
    assert find_config(None) is None


def test_state_dir_configured_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "systemd"))
    settings = load_settings(write(tmp_path, f"[agent]\nstate_dir = '{tmp_path / 'mine'}'\n"))
    assert resolve_state_dir(settings) == tmp_path / "mine"


def test_state_dir_from_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'one'}:{tmp_path / 'two'}")
    assert resolve_state_dir(Settings()) == tmp_path / "one"


def test_state_dir_system_when_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    system = tmp_path / "var-lib" / "resource-agent"
    monkeypatch.setattr(agent.config, "SYSTEM_STATE_DIR", system)
    # Not there yet but creatable (its parent is writable).
    (tmp_path / "var-lib").mkdir()
    assert resolve_state_dir(Settings()) == system
    system.mkdir()
    assert resolve_state_dir(Settings()) == system


def test_state_dir_xdg_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    # The system dir can be neither used nor created: its parent is missing.
    monkeypatch.setattr(agent.config, "SYSTEM_STATE_DIR", tmp_path / "no" / "such" / "dir")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert resolve_state_dir(Settings()) == tmp_path / "xdg" / "resource-agent"
    monkeypatch.setenv("XDG_STATE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "state" / "resource-agent"
    assert resolve_state_dir(Settings()) == expected
    monkeypatch.delenv("XDG_STATE_HOME")
    assert resolve_state_dir(Settings()) == expected

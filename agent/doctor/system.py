"""Checks of the machine itself: the agent's user, config, state directory, port, udev."""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import socket
import stat
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.config import (
    DEFAULT_CONFIG,
    SYSTEM_STATE_DIR,
    ConfigError,
    ConfigProblem,
    Settings,
    load_settings,
    resolve_state_dir,
)
from agent.discovery.match import classify, needs_ancestors
from agent.discovery.sysfs import device_info
from agent.doctor.report import Check, failed, passed

AGENT_USER = "resource-agent"
DEVICE_GROUP = "plugdev"
UDEV_RULES = Path("/etc/udev/rules.d/90-resource-agent.rules")
RULES_ENV = "RESOURCE_AGENT_UDEV_RULES"  # another rules path (tests, other layouts)
PROBE_BYTES = 64 * 1024  # what the state directory check writes (and removes)
RELOAD_UDEV = "udevadm control --reload && udevadm trigger --subsystem-match=usb --action=change"


# ------------------------------------------------------------------- the user


@dataclass(frozen=True, slots=True)
class AgentUser:
    """Who the agent runs as: the user whose access the file checks judge."""

    name: str
    uid: int
    gids: frozenset[int]

    def can(self, st: os.stat_result, mode: int) -> bool:
        """Whether this user may ``mode`` (R_OK|W_OK...) a file with ``st`` (no ACLs)."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in self.gids:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        return bits & mode == mode


def agent_user(name: str | None = None) -> AgentUser:
    """``name``, else the installed ``resource-agent`` user, else whoever runs doctor.

    The installed user also gets ``plugdev``, as the unit's SupplementaryGroups= does.
    """
    if name is None:
        try:
            pwd.getpwnam(AGENT_USER)
            name = AGENT_USER
        except KeyError:
            return AgentUser(
                pwd.getpwuid(os.getuid()).pw_name,
                os.getuid(),
                frozenset([os.getgid(), *os.getgroups()]),
            )
    entry = pwd.getpwnam(name)  # KeyError: the caller names the unknown user
    gids = {entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)}
    if name == AGENT_USER:
        gids |= {g.gr_gid for g in grp.getgrall() if g.gr_name == DEVICE_GROUP}
    return AgentUser(name, entry.pw_uid, frozenset(gids))


# ---------------------------------------------------------------- the checks


def check_config(found: Path | None) -> tuple[Check, Settings | None]:
    """The config file ``find_config`` found (None: none) parses and validates."""
    name = "config"
    try:
        settings = load_settings(found)
    except ConfigError as exc:
        return failed(name, str(exc), _config_fix(found, exc.problem)), None
    if found is None:
        return passed(name, "no config file; built-in defaults"), settings
    return passed(name, f"{found} is valid"), settings


def _config_fix(found: Path | None, problem: ConfigProblem) -> str:
    if problem is ConfigProblem.MISSING:
        return (
            f"create {found} (make install puts an example in {DEFAULT_CONFIG}), or pass "
            "--config with the file the agent uses"
        )
    if problem is ConfigProblem.UNREADABLE:
        return f"make {found} a file that root and the agent's user can read"
    if problem is ConfigProblem.SYNTAX:
        return f"correct the TOML syntax of {found} at the line named above"
    return (
        f"edit {found}: correct each key named above (README.md lists every key and its "
        "type), then run doctor again"
    )


def check_state_dir(settings: Settings, user: AgentUser) -> Check:
    """The state directory exists (or can be made) and the agent's user can write it."""
    name = "state directory"
    path = resolve_state_dir(settings)
    if path.exists() and not path.is_dir():
        return failed(
            name,
            f"{path} is not a directory",
            f"move {path} out of the way (mv {path} {path}.old), or set [agent] state_dir "
            "to a directory",
        )
    probe = path if path.exists() else _nearest_existing(path)
    try:
        # Some bytes, synced: an empty file fits on a full file system.
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".doctor-") as f:
            f.write(bytes(PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return failed(name, f"cannot write in {probe}: {exc.strerror or exc}",
                      _unwritable_fix(exc, path, probe, user))  # fmt: skip
    if path == SYSTEM_STATE_DIR:
        # The unit's StateDirectory= creates it and gives it to the agent's user at start.
        return passed(name, f"{path} is usable (systemd's StateDirectory= owns it)")
    if not user.can(probe.stat(), os.W_OK | os.X_OK):
        return failed(
            name,
            f"{probe} is not writable by {user.name}",
            f"chown {user.name}: {probe} && chmod 700 {probe}",
        )
    if probe != path:
        return passed(name, f"{path} will be created in {probe}")
    return passed(name, f"{path} is writable by {user.name}")


def _unwritable_fix(exc: OSError, path: Path, probe: Path, user: AgentUser) -> str:
    # A running agent refuses changes meanwhile (code 15) and says so in its health.
    if exc.errno == errno.ENOSPC:
        return (
            f"free space on the file system of {probe} (df -h {probe} shows it); the agent "
            "takes changes again as soon as it can write, without a restart"
        )
    if exc.errno == errno.EROFS:
        return (
            f"the file system of {probe} is read-only: find out why (dmesg), fix it and "
            f"remount it read-write, or set [agent] state_dir"
        )
    return (
        f"make {path} writable for {user.name} (mkdir -p {path} && "
        f"chown {user.name}: {path} && chmod 700 {path}), or set [agent] state_dir"
    )


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def check_port(settings: Settings) -> Check:
    """The listen port is free, or held by this agent already."""
    name = "listen port"
    host, port = settings.server.address
    listen = settings.server.listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            error = exc
        else:
            return passed(name, f"{listen} is free")
    if error.errno == errno.EADDRINUSE:
        if _is_agent(host, port):
            return passed(name, f"{listen} is held by a running resource-agent")
        return failed(
            name,
            f"{listen} is taken by another program",
            f"find it with `ss -ltnp 'sport = :{port}'` and stop it (Jenkins' ResourceMonitor "
            "calls port 8080, so free that port rather than moving the agent), or set "
            "[server] listen",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return failed(
            name,
            f"{listen}: {host} is not an address of this machine",
            "set [server] listen to 0.0.0.0:8080, or to an address `ip addr` shows",
        )
    return failed(
        name,
        f"cannot bind {listen}: {error.strerror or error}",
        "set [server] listen to a port above 1023 the agent may bind (8080)",
    )


def _is_agent(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    url = f"http://{'[' + target + ']' if ':' in target else target}:{port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply
        return False
    return (
        isinstance(body, dict) and body.get("status") in ("ok", "degraded") and "resources" in body
    )


def rules_path() -> Path:
    """Where doctor looks for the udev rules (``$RESOURCE_AGENT_UDEV_RULES`` overrides)."""
    return Path(os.environ.get(RULES_ENV) or UDEV_RULES)


def check_udev_rules(path: Path) -> Check:
    """The agent's udev rules are installed."""
    name = "udev rules"
    install = (
        f"install them: `make install` as root, or cp udev-rules/90-resource-agent.rules "
        f"{path} && {RELOAD_UDEV}"
    )
    try:
        text = path.read_text()
    except FileNotFoundError:
        return failed(name, f"{path} is missing", install)
    except OSError as exc:
        return failed(name, f"cannot read {path}: {exc.strerror or exc}", install)
    if "resource-agent.service" not in text or ":ff4201:" not in text:
        return failed(name, f"{path} is not the resource-agent rules file", install)
    return passed(name, f"{path} is installed")


def check_usb_devices(settings: Settings, user: AgentUser) -> list[Check]:
    """Every USB device the agent would take: its node is open to the agent's user."""
    if not settings.udev.enabled:
        return [passed("usb devices", "udev discovery is off ([udev] enabled = false)")]
    try:
        devices = list(matched_devices(settings))
    except Exception as exc:  # libudev missing or broken: say so, don't crash doctor
        return [
            failed(
                "usb devices",
                f"cannot list USB devices through udev: {exc}",
                "install udev and libudev1 (apt-get install udev)",
            )
        ]
    if not devices:
        return [passed("usb devices", "no phone or matched USB device is plugged in")]
    return [_check_node(label, devnode, user) for label, devnode in devices]


def matched_devices(settings: Settings) -> Iterable[tuple[str, str | None]]:
    """(label, device node) of each USB device the discovery rules take."""
    import pyudev  # here: importing it touches libudev

    ancestors = needs_ancestors(settings.match)
    for device in pyudev.Context().list_devices(subsystem="usb", DEVTYPE="usb_device"):
        info = device_info(device, ancestors)
        if classify(info, settings.match) is None:
            continue
        props = info.properties
        what = " ".join(p for p in (props.get("ID_VENDOR"), props.get("ID_MODEL")) if p)
        serial = props.get("ID_SERIAL_SHORT")
        label = f"usb {device.sys_name} ({what or 'USB device'}{', ' + serial if serial else ''})"
        yield label, props.get("DEVNAME")


def _check_node(label: str, devnode: str | None, user: AgentUser) -> Check:
    if not devnode:
        return failed(label, "udev gives it no device node", f"replug it, or run {RELOAD_UDEV}")
    try:
        st = os.stat(devnode)
    except OSError as exc:
        return failed(label, f"{devnode}: {exc.strerror or exc}", f"replug it, or {RELOAD_UDEV}")
    if user.can(st, os.R_OK | os.W_OK):
        return passed(label, f"{devnode} is open to {user.name}")
    mode = stat.filemode(st.st_mode)
    group = _group_name(st.st_gid)
    detail = f"{devnode} ({mode} {_user_name(st.st_uid)}:{group}) is not read-write for {user.name}"
    if group == DEVICE_GROUP and st.st_mode & stat.S_IRWXG == stat.S_IRGRP | stat.S_IWGRP:
        fix = (
            f"add {user.name} to {DEVICE_GROUP}: usermod -aG {DEVICE_GROUP} {user.name}, "
            "then systemctl restart resource-agent"
        )
    else:
        fix = f"the udev rules did not apply to it: check them (above), then {RELOAD_UDEV}"
    return failed(label, detail, fix)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

"""``resource-agent doctor``: check an installation and say how to fix what is wrong.

Each check is a small function answering ``Check`` results (name, ok, detail,
fix). The checks look at the system the way the agent will meet it: the
config it reads, the state directory and device nodes as its user, the port
it binds, the adb server it asks, and each Jenkins it reports to (with the
same request the coordinator sync starts with).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import grp
import json
import os
import pwd
import socket
import ssl
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from agent.config import (
    SYSTEM_STATE_DIR,
    ConfigError,
    CoordinatorSection,
    Settings,
    find_config,
    load_settings,
    parse_hostport,
    resolve_state_dir,
)
from agent.credentials import CredentialError, read_token
from agent.discovery.adb_host import AdbHost, AdbHostError
from agent.discovery.match import classify, needs_ancestors
from agent.discovery.udev import device_info

AGENT_USER = "resource-agent"
DEVICE_GROUP = "plugdev"
UDEV_RULES = Path("/etc/udev/rules.d/90-resource-agent.rules")
RULES_ENV = "RESOURCE_AGENT_UDEV_RULES"  # another rules path (tests, other layouts)
ADB_TIMEOUT = 3.0
RELOAD_UDEV = "udevadm control --reload && udevadm trigger --subsystem-match=usb --action=change"
PERMISSIONS = (
    "ExternalResource/EnableDisable, ExternalResource/LockRelease, "
    "Metadata/Update and Metadata/Replace"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: what was checked, whether it passed, what was seen, what to do."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def passed(name: str, detail: str) -> Check:
    """A check that passed."""
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    """A check that failed, with the concrete fix."""
    return Check(name, False, detail, fix)


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
        return failed(
            name,
            str(exc),
            f"edit {found}: correct the key named above (README.md lists every key and its "
            "type), then run doctor again",
        ), None
    if found is None:
        return passed(name, "no config file; built-in defaults"), settings
    return passed(name, f"{found} is valid"), settings


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
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".doctor-"):
            pass
    except OSError as exc:
        return failed(
            name,
            f"cannot write in {probe}: {exc.strerror or exc}",
            f"make {path} writable for {user.name} (mkdir -p {path} && "
            f"chown {user.name}: {path} && chmod 700 {path}), or set [agent] state_dir",
        )
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
    return isinstance(body, dict) and body.get("status") == "ok" and "resources" in body


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


# ------------------------------------------------------------------------ adb


async def _ask_adb(host: str, port: int) -> tuple[int, list[tuple[str, str]]]:
    adb = AdbHost(host, port)
    return await adb.version(ADB_TIMEOUT), await adb.devices(ADB_TIMEOUT)


def check_adb(settings: Settings) -> list[Check]:
    """The adb server answers; its version; phones waiting for authorization."""
    name = "adb server"
    if not settings.adb.enabled:
        return [passed(name, "adb is off ([adb] enabled = false)")]
    server = settings.adb.server
    host, port = parse_hostport(server)
    start = (
        "start the one installed with the agent: systemctl enable --now resource-agent-adb "
        f"(by hand: sudo -u {AGENT_USER} -H adb -P {port} start-server), "
        "or set [adb] server to where yours runs"
    )
    try:
        version, devices = asyncio.run(_ask_adb(host, port))
    except TimeoutError:
        return [failed(name, f"no adb server at {server}: no answer in time", start)]
    except OSError as exc:
        # asyncio's strerror is "Connect call failed (...)"; the errno's words say more.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return [failed(name, f"no adb server at {server}: {reason}", start)]
    except (AdbHostError, EOFError) as exc:
        problem = "the connection closed mid-answer" if isinstance(exc, EOFError) else exc
        return [
            failed(name, f"{server}: {problem}", f"check that {server} is an adb server; {start}")
        ]
    results = [passed(name, f"adb server 1.0.{version} at {server}, {len(devices)} device(s)")]
    for serial, state in devices:
        if state == "unauthorized":
            results.append(
                failed(
                    f"phone {serial}",
                    "unauthorized: USB debugging was not allowed for this machine",
                    "unlock the phone and tap Allow on the 'Allow USB debugging?' prompt "
                    "(tick 'Always allow from this computer'); no prompt: replug it, or revoke "
                    "USB debugging authorizations in Developer options and replug",
                )
            )
        elif state == "no permissions":
            results.append(
                failed(
                    f"phone {serial}",
                    "no permissions: the adb server cannot open the USB device",
                    f"check the udev rules and usb device checks above, then {RELOAD_UDEV}",
                )
            )
    return results


# ---------------------------------------------------------------- coordinators


def check_coordinator(sec: CoordinatorSection, node: str, config_dir: Path | None) -> Check:
    """The Jenkins answers, accepts the token, and has the node and the tree."""
    name = f"coordinator {sec.url}"
    headers = {"Accept": "application/json"}
    if sec.user is not None and sec.token_file is not None:
        try:
            token = read_token(sec.token_file, config_dir)
        except CredentialError as exc:
            if "Permission denied" in str(exc):
                return failed(name, str(exc), "run doctor as root (sudo): the token is root-only")
            return failed(
                name,
                str(exc),
                f"create an API token for {sec.user} in Jenkins (user menu -> Security -> "
                "API Token -> Add new token) and write it into that file (chmod 600)",
            )
        basic = base64.b64encode(f"{sec.user}:{token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    context = None
    if sec.url.startswith("https:"):
        try:
            context = _tls_context(sec)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return failed(
                name,
                f"cannot load ca_file {sec.ca_file}: {reason}",
                "set ca_file to the PEM file of the CA that signed the Jenkins certificate",
            )
    url = f"{sec.url}metadata-httpcli/get?node={quote(node, safe='')}"
    status, body, error = _http_get(url, headers, context, sec.timeout)
    if error is not None:
        return failed(
            name,
            f"unreachable: {error}",
            f"check [[coordinator]] url and that this machine reaches it (curl -sI {sec.url})"
            + ("; for a private CA set ca_file" if "CERTIFICATE" in error.upper() else ""),
        )
    return _judge_metadata(name, sec, node, status, body)


def _judge_metadata(
    name: str, sec: CoordinatorSection, node: str, status: int, body: bytes
) -> Check:
    who = sec.user or "anonymous"
    if status == 401:
        return failed(
            name,
            f"HTTP 401: Jenkins refused the token of {who}",
            f"create a new API token for {who} and write it into the token_file "
            f"({sec.token_file or 'not set: add user and token_file'})",
        )
    if status == 403:
        return failed(
            name,
            f"HTTP 403: {who} lacks a permission on node {node!r}",
            f"grant {who} {PERMISSIONS} (Manage Jenkins -> Security)",
        )
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        answer = None
    if isinstance(answer, dict) and answer.get("errorName") == "ERR_NO_ITEM":
        return failed(
            name,
            f"Jenkins has no node {node!r}",
            f"create the node {node!r} in Jenkins (Manage Jenkins -> Nodes), or set "
            "[agent] node (or [[coordinator]] node) to the node's exact name",
        )
    if status != 200 or not isinstance(answer, list):
        excerpt = body[:200].decode(errors="replace").strip()
        return failed(
            name,
            f"HTTP {status}, not a metadata answer: {excerpt!r}",
            "check that url is the Jenkins root and that the Metadata and External Resource "
            "Dispatcher plugins are installed",
        )
    names = {str(v.get("name", "")).lower() for v in answer if isinstance(v, dict)}
    if sec.tree.lower() not in names:
        return failed(
            name,
            f"node {node!r} has no tree node {sec.tree!r}",
            f"on the node's configuration page add an External Resource TreeNode named "
            f"{sec.tree!r} (or set [[coordinator]] tree to the existing one's name)",
        )
    return passed(name, f"token of {who} accepted; node {node!r} has tree {sec.tree!r}")


def _tls_context(sec: CoordinatorSection) -> ssl.SSLContext:
    """TLS as the coordinator sync does it: ca_file is read only when verifying."""
    if not sec.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=sec.ca_file)


def _http_get(
    url: str, headers: dict[str, str], context: ssl.SSLContext | None, timeout: float
) -> tuple[int, bytes, str | None]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.read(), None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), None
    except urllib.error.URLError as exc:
        return 0, b"", str(exc.reason)
    except OSError as exc:
        return 0, b"", str(exc)


# ------------------------------------------------------------------ all of it


def run(config: Path | None, user_name: str | None = None) -> list[Check]:
    """Every check, in the order an administrator would fix things."""
    found = find_config(config)
    result, settings = check_config(found)
    checks = [result]
    if settings is None:
        return checks
    try:
        user = agent_user(user_name)
    except KeyError:
        return [
            *checks,
            failed("user", f"no user {user_name!r}", "create it: make install (systemd-sysusers)"),
        ]
    config_dir = found.parent if found is not None else None
    checks.append(check_state_dir(settings, user))
    checks.append(check_port(settings))
    checks.append(check_udev_rules(rules_path()))
    checks += check_usb_devices(settings, user)
    checks += check_adb(settings)
    for sec in settings.coordinator:
        checks.append(check_coordinator(sec, sec.node or settings.agent.node, config_dir))
    return checks


def as_text(checks: Sequence[Check]) -> str:
    """One line per check, the fix indented under each failure, and a verdict."""
    lines = []
    for c in checks:
        lines.append(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
        if not c.ok:
            lines.append(f"      fix: {c.fix}")
    bad = sum(not c.ok for c in checks)
    lines.append(f"{bad} problem{'s' if bad != 1 else ''} found" if bad else "all checks passed")
    return "\n".join(lines)


def as_json(checks: Sequence[Check]) -> str:
    """``{"ok": bool, "checks": [{name, ok, detail, fix}...]}``."""
    return json.dumps(
        {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2
    )

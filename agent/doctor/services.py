"""Checks of what the agent talks to: the adb server, and each Jenkins coordinator.

Jenkins is asked through the agent's own client (agent/coordinator/jenkins.py)
with the request the coordinator sync starts with, so doctor checks exactly
what the agent will do.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from agent.config import CoordinatorSection, Settings, parse_hostport
from agent.coordinator.jenkins import Failure, JenkinsError, client_for
from agent.discovery.adb_host import AdbHost, AdbHostError
from agent.doctor.report import Check, failed, passed
from agent.doctor.system import AGENT_USER, RELOAD_UDEV
from agent.model import AdbState

ADB_TIMEOUT = 3.0
PERMISSIONS = (
    "ExternalResource/EnableDisable, ExternalResource/LockRelease, "
    "Metadata/Update and Metadata/Replace"
)


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
        f"(by hand: sudo -u {AGENT_USER} -H resource-agent adb-server, in the foreground), "
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
        if state == AdbState.UNAUTHORIZED:
            results.append(
                failed(
                    f"phone {serial}",
                    "unauthorized: USB debugging was not allowed for this machine",
                    "unlock the phone and tap Allow on the 'Allow USB debugging?' prompt "
                    "(tick 'Always allow from this computer'); no prompt: replug it, or revoke "
                    "USB debugging authorizations in Developer options and replug",
                )
            )
        elif state == AdbState.NO_PERMISSIONS:
            results.append(
                failed(
                    f"phone {serial}",
                    "no permissions: the adb server cannot open the USB device",
                    f"check the udev rules and usb device checks above, then {RELOAD_UDEV}",
                )
            )
    return results


# ---------------------------------------------------------------- coordinators


async def _get_metadata(sec: CoordinatorSection, node: str, config_dir: Path | None) -> Any:
    client = client_for(sec, node, config_dir)
    try:
        return await client.get_metadata()
    finally:
        await client.close()


def check_coordinator(sec: CoordinatorSection, node: str, config_dir: Path | None) -> Check:
    """The Jenkins answers, accepts the token, and has the node and the tree."""
    name = f"coordinator {sec.url}"
    node = sec.node or node
    try:
        answer = asyncio.run(_get_metadata(sec, node, config_dir))
    except JenkinsError as err:
        return _judge_error(name, sec, node, err)
    if not isinstance(answer, list):
        return _not_metadata(name, f"{str(answer)[:200]!r}")
    names = {str(v.get("name", "")).lower() for v in answer if isinstance(v, dict)}
    who = sec.user or "anonymous"
    if sec.tree.lower() not in names:
        return failed(
            name,
            f"node {node!r} has no tree node {sec.tree!r}",
            f"on the node's configuration page add an External Resource TreeNode named "
            f"{sec.tree!r} (or set [[coordinator]] tree to the existing one's name)",
        )
    return passed(name, f"token of {who} accepted; node {node!r} has tree {sec.tree!r}")


def _not_metadata(name: str, what: str) -> Check:
    return failed(
        name,
        f"not a metadata answer: {what}",
        "check that url is the Jenkins root and that the Metadata and External Resource "
        "Dispatcher plugins are installed",
    )


def _judge_error(name: str, sec: CoordinatorSection, node: str, err: JenkinsError) -> Check:
    who = sec.user or "anonymous"
    if err.kind is Failure.CONFIG and err.message.startswith("token file"):
        if "Permission denied" in err.message:
            return failed(name, err.message, "run doctor as root (sudo): the token is root-only")
        return failed(
            name,
            err.message,
            f"create an API token for {sec.user} in Jenkins (user menu -> Security -> "
            "API Token -> Add new token) and write it into that file (chmod 600)",
        )
    if err.kind is Failure.CONFIG and err.message.startswith("cannot load ca_file"):
        return failed(
            name,
            err.message,
            "set ca_file to the PEM file of the CA that signed the Jenkins certificate",
        )
    if err.status == 401:
        return failed(
            name,
            f"HTTP 401: Jenkins refused the token of {who}",
            f"create a new API token for {who} and write it into the token_file "
            f"({sec.token_file or 'not set: add user and token_file'})",
        )
    if err.status == 403:
        return failed(
            name,
            f"HTTP 403: {who} lacks a permission on node {node!r}",
            f"grant {who} {PERMISSIONS} (Manage Jenkins -> Security)",
        )
    if err.kind is Failure.NO_NODE:
        return failed(
            name,
            f"Jenkins has no node {node!r}",
            f"create the node {node!r} in Jenkins (Manage Jenkins -> Nodes), or set "
            "[agent] node (or [[coordinator]] node) to the node's exact name",
        )
    if err.kind in (Failure.UNREACHABLE, Failure.CONFIG):
        return failed(
            name,
            f"unreachable: {err.message}",
            f"check [[coordinator]] url and that this machine reaches it (curl -sI {sec.url})"
            + ("; for a private CA set ca_file" if "CERTIFICATE" in err.message.upper() else ""),
        )
    return _not_metadata(name, err.message)

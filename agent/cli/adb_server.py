"""``resource-agent adb-server``: the adb server the agent asks, in the foreground.

It executes the adb that adbutils' wheel ships (platform-tools 36), not
whatever ``adb`` is on the PATH: Debian 12's adb 29 never tells a tracker
(``host:track-devices``) that a TCP phone went offline, so the agent would
keep offering a dead phone as free. The process becomes adb itself (exec), so
systemd's main process, its signals and its exit status are adb's
(resource-agent-adb.service runs this command).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import click

from agent.cli.base import Failed, main

# adb binds "localhost" (IPv4) unless given another socket, and refuses an
# explicit 127.0.0.1; it is never exposed beyond this machine from here.
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def adb_binary() -> Path:
    """The adb executable in adbutils' wheel (``adbutils/binaries/adb``)."""
    path = Path(str(resources.files("adbutils.binaries") / "adb"))
    if not os.access(path, os.X_OK):
        raise Failed(
            f"resource-agent: no adb executable at {path}: adbutils was installed without"
            " its binary (from a source package?); reinstall it from a wheel:"
            " pip install --force-reinstall --only-binary adbutils adbutils"
        )
    return path


def server_command(server: str) -> list[str]:
    """The adb command line that serves ``[adb] server`` (``HOST:PORT``) in the foreground."""
    from agent.config import parse_hostport

    host, port = parse_hostport(server)
    if host not in LOCAL_HOSTS:
        raise Failed(
            f"resource-agent: [adb] server = {server!r}: this command serves adb on"
            f' 127.0.0.1 only; set [adb] server = "127.0.0.1:{port}", or run the adb'
            " server where it points"
        )
    return [str(adb_binary()), "-P", str(port), "server", "nodaemon"]


@main.command("adb-server")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config.")
def adb_server(config_path: Path | None) -> None:
    """Run the adb server on [adb] server's port in the foreground (replaces this process)."""
    from agent.config import ConfigError, find_config, load_settings

    try:
        settings = load_settings(find_config(config_path))
    except ConfigError as exc:
        raise Failed(f"resource-agent: {exc}") from exc
    command = server_command(settings.adb.server)
    try:
        os.execv(command[0], command)
    except OSError as exc:
        raise Failed(f"resource-agent: cannot run {command[0]}: {exc.strerror or exc}") from exc

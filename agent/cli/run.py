"""``resource-agent run``: a session around one command, the way Jenkins runs a build.

It locks a free resource that matches (waiting in the agent's line with
``--wait``) under a lease it renews while the command runs, prints the
provisioning log, exports the resource as the Jenkins plugin would, runs the
command, and releases the resource when the command ends -- also on SIGINT and
SIGTERM, which are passed on to the command. If ``run`` itself is killed, the
lease runs out, the agent cleans the resource, and it is free again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any

import click

from agent.cli.base import Failed, client, holder_name, main, url_option
from agent.cli.options import Seconds, seconds_option
from agent.cli.sessions import failure, follow
from agent.client import ApiRefusal, Client, Unreachable
from agent.model import locked_environment

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _selectors(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    out: dict[str, str] = {}
    for value in values:
        name, sep, wanted = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        out[name] = wanted
    return out


class _Renewer(threading.Thread):
    """Renews the lease a third of its length before it runs out, until stopped."""

    def __init__(self, c: Client, resource_id: str, key: str, lease: float) -> None:
        super().__init__(name="lease-renewer", daemon=True)
        self._c, self._rid, self._key, self._lease = c, resource_id, key, lease
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                self._c.post(self._c.resource_path(self._rid, "renew"), {"key": self._key})
            except (Unreachable, ApiRefusal) as exc:
                click.echo(
                    f"resource-agent: cannot renew the lease on {self._rid}: {exc}", err=True
                )

    def stop(self) -> None:
        self._stop.set()


def _release(c: Client, resource_id: str, key: str) -> None:
    try:
        c.post(c.resource_path(resource_id, "release"), {"key": key})
    except (Unreachable, ApiRefusal) as exc:
        # The lease will end the lock anyway; say so rather than fail the command's result.
        click.echo(f"resource-agent: cannot release {resource_id}: {exc}", err=True)


def _run_command(command: tuple[str, ...], env: dict[str, str]) -> int:
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        raise Failed(f"resource-agent: cannot run {command[0]}: {exc.strerror or exc}") from exc

    def forward(signum: int, frame: FrameType | None) -> None:
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@main.command(context_settings={"ignore_unknown_options": True})
@url_option
@click.option(
    "--select",
    "select",
    multiple=True,
    callback=_selectors,
    metavar="KEY=VALUE",
    help="Metadata the resource must have (exactly; repeatable), as Jenkins selects.",
)
@click.option("--resource", "resource_id", help="This resource and no other.")
@click.option("--wait", is_flag=True, help="Wait in line for a busy resource (first come first).")
@seconds_option(
    "--timeout", "Seconds to wait in line with --wait", Seconds(zero=True), default=600.0
)
@seconds_option(
    "--lease",
    "Seconds the lock outlives this command if it is killed (renewed while it runs)",
    Seconds(minimum=5),
    default=60.0,
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    *,
    url: str,
    select: dict[str, str],
    resource_id: str | None,
    wait: bool,
    timeout: float,
    lease: float,
    command: tuple[str, ...],
) -> None:
    """Lock a matching resource, prepare it, run COMMAND with it, and release it.

    Exits with COMMAND's exit status; 1 when no resource could be had or its
    provisioning failed (COMMAND then never runs).
    """
    body = {
        "select": select,
        "resource": resource_id,
        "lease": lease,
        "wait": timeout if wait else 0,
        "holder": holder_name(),
    }
    with client(url) as c:
        taken = c.post("acquire", body)
        res, key = taken["resource"], taken["hold"]["key"]
        renewer = _Renewer(c, res["id"], key, lease)
        renewer.start()
        try:
            code = _provisioned_then_run(c, taken, command)
        finally:
            renewer.stop()
            _release(c, res["id"], key)
    sys.exit(code)


def _provisioned_then_run(c: Client, taken: dict[str, Any], command: tuple[str, ...]) -> int:
    res = taken["resource"]
    click.echo(f"resource-agent: locked {res['id']} ({res['name']})", err=True)
    if taken.get("session"):
        record = follow(c, taken["session"])
        if record["status"] == "failed":
            raise Failed(f"resource-agent: {failure(record)}")
    return _run_command(command, environment(res))


def environment(res: dict[str, Any]) -> dict[str, str]:
    """This process's environment plus the resource, as the Jenkins plugin exports it."""
    env = {**os.environ, **locked_environment(res["id"], res["metadata"])}
    if res["kind"] == "android":
        env["ANDROID_SERIAL"] = res["id"]
    return env

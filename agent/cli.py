"""The ``resource-agent`` command line.

Exit codes: 0 done, 1 refused (the reason is printed), 2 usage error,
3 agent unreachable. Each non-zero code has its own exception (click's usage
errors are 2), raised where the problem is found and printed by click.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import click

from agent.client import ApiRefusal, Client, Unreachable


class Failed(click.ClickException):
    """Exit 1: refused, or could not be done; printed as it is, without "Error:"."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the message alone on stderr."""
        click.echo(self.format_message(), err=True)


class Refusal(Failed):
    """Exit 1: the agent said no; ``refused (CODE): why``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"refused ({code}): {message}")


class NoAgent(Failed):
    """Exit 3: no agent answered at the URL."""

    exit_code = 3


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"expected http://HOST:PORT, got {value!r}")
    try:
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError as exc:
        raise click.BadParameter(f"bad port in {value!r}: {exc}") from exc
    return value


url_option = click.option(
    "--url",
    default="http://127.0.0.1:8080",
    show_default=True,
    envvar="RESOURCE_AGENT_URL",
    callback=_check_url,
    help="The agent to talk to.",
)


@click.group()
def main() -> None:
    """Find phones and USB devices, and lock them for Jenkins builds and people."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config.")
@click.option("--listen", help="HOST:PORT to serve on (overrides [server] listen).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
def serve(config_path: Path | None, listen: str | None, log_level: str | None) -> None:
    """Run the agent in the foreground."""
    from agent.config import (
        ConfigError,
        ServerSection,
        find_config,
        load_settings,
        resolve_state_dir,
    )
    from agent.daemon import Daemon
    from agent.store import StoreError
    from agent.systemd import logs

    try:
        found = find_config(config_path)
        settings = load_settings(found)
        if listen is not None:
            try:
                server = ServerSection(listen=listen)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--listen") from exc
            settings = settings.model_copy(update={"server": server})
    except ConfigError as exc:
        raise Failed(f"resource-agent: {exc}") from exc
    logs.setup(log_level or settings.agent.log_level)
    try:
        config_dir = found.parent if found is not None else None
        code = asyncio.run(Daemon(settings, resolve_state_dir(settings), config_dir).run())
    except StoreError as exc:
        raise Failed(f"resource-agent: {exc}") from exc
    sys.exit(code)


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--user", help="Judge file access as this user (default: resource-agent).")
def doctor(config_path: Path | None, as_json: bool, user: str | None) -> None:
    """Check the installation; explain each problem and its fix. Exit 0 only if all pass."""
    from agent import doctor as checks

    results = checks.run(config_path, user)
    click.echo(checks.as_json(results) if as_json else checks.as_text(results))
    if not all(r.ok for r in results):
        sys.exit(Failed.exit_code)


def _run(url: str, call: Callable[[Client], Any], show: Callable[[Any], None]) -> None:
    try:
        result = call(Client(url))
    except Unreachable as exc:
        raise NoAgent(f"resource-agent: {exc}") from exc
    except ApiRefusal as exc:
        raise Refusal(exc.code, exc.message) from exc
    try:
        show(result)
    except (KeyError, TypeError, IndexError) as exc:
        # JSON, but not the agent's: another service answers at that URL.
        raise NoAgent(f"resource-agent: no agent at {url}: the answer lacks {exc}") from exc


def _holder_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _holder_text(res: dict[str, Any]) -> str:
    holder = res.get("holder")
    if not holder:
        return res.get("health") or res.get("disabled_reason") or ""
    return str(holder["holder"]["url"] or holder["holder"]["id"])


def _print_table(data: Any) -> None:
    rows = [("ID", "KIND", "STATE", "NAME", "HOLDER / REASON")]
    rows += [
        (r["id"], r["kind"], r["state"], r["name"], _holder_text(r)) for r in data["resources"]
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        click.echo("  ".join([*cells, str(row[4])]).rstrip())


def _print_hold(data: Any) -> None:
    hold = data["hold"]
    expires = f", expires {hold['expires']}" if hold["expires"] else ""
    click.echo(f"{hold['kind']} {data['resource']['id']}{expires}")
    click.echo(f"key: {hold['key']}")


@main.command(name="list")
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(url: str, as_json: bool) -> None:
    """List resources and who holds them."""
    _run(url, lambda c: c.get("resources"), _print_json if as_json else _print_table)


@main.command()
@url_option
@click.argument("resource_id")
def show(url: str, resource_id: str) -> None:
    """Show one resource as JSON."""
    _run(url, lambda c: c.get(c.resource_path(resource_id)), _print_json)


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300.0)
def reserve(url: str, resource_id: str, timeout: float) -> None:
    """Reserve a resource; prints the key."""
    body = {"timeout": timeout, "holder": _holder_name()}
    _run(url, lambda c: c.post(c.resource_path(resource_id, "reserve"), body), _print_hold)


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--key", help="The reservation's key; without it a free resource is locked.")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), help="Lease in seconds.")
def lock(url: str, resource_id: str, key: str | None, lease: float | None) -> None:
    """Lock a resource; prints the key."""
    body: dict[str, Any] = {"holder": _holder_name()}
    if key is not None:
        body["key"] = key
    if lease is not None:
        body["lease"] = lease
    _run(url, lambda c: c.post(c.resource_path(resource_id, "lock"), body), _print_hold)


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--key", help="The hold's key.")
@click.option("--force", is_flag=True, help="Release whoever holds it (administrators).")
def release(url: str, resource_id: str, key: str | None, force: bool) -> None:
    """Release a reservation or lock."""
    if key is None and not force:
        raise click.UsageError("give --key, or --force to release someone else's hold")
    body: dict[str, Any] = {"force": force}
    if key is not None:
        body["key"] = key
    _run(
        url,
        lambda c: c.post(c.resource_path(resource_id, "release"), body),
        lambda d: click.echo(f"released {d['resource']['id']}"),
    )


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--key", required=True, help="The hold's key.")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), help="New lease (s).")
def renew(url: str, resource_id: str, key: str, lease: float | None) -> None:
    """Renew a reservation or a lock's lease."""
    body: dict[str, Any] = {"key": key}
    if lease is not None:
        body["lease"] = lease
    _run(url, lambda c: c.post(c.resource_path(resource_id, "renew"), body), _print_hold)


@main.command()
@url_option
@click.argument("resource_id")
def enable(url: str, resource_id: str) -> None:
    """Let a resource take holds again."""
    _run(
        url,
        lambda c: c.post(c.resource_path(resource_id, "enable"), {}),
        lambda d: click.echo(f"enabled {d['id']}"),
    )


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--reason", default="", help="Why, for the people who will wonder.")
def disable(url: str, resource_id: str, reason: str) -> None:
    """Stop a resource from taking new holds."""
    _run(
        url,
        lambda c: c.post(c.resource_path(resource_id, "disable"), {"reason": reason}),
        lambda d: click.echo(f"disabled {d['id']}"),
    )


def _print_coordinators(data: Any) -> None:
    coordinators = data["coordinators"]
    if not coordinators:
        click.echo("no coordinators configured")
    for c in coordinators:
        click.echo(f"{c['url']} (node {c['node']}, tree {c['tree']}): {c['state']}")
        click.echo(f"  pending changes: {c['pending']}")
        click.echo(f"  last success:    {c['last_success'] or 'never'}")
        if c["next_retry"]:
            click.echo(f"  next retry:      {c['next_retry']}")
        err = c["last_error"]
        if err:
            click.echo(f"  last error:      {err['at']} ({err['kind']}) {err['message']}")


@main.command()
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(url: str, as_json: bool) -> None:
    """Show each coordinator's sync: state, pending changes, last success, last error."""
    _run(url, lambda c: c.get("coordinators"), _print_json if as_json else _print_coordinators)


if __name__ == "__main__":
    main()

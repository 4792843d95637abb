"""Commands on resources and coordinators, through the agent's REST API."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from agent.cli.base import (
    Failed,
    call,
    client,
    holder_name,
    main,
    print_hold,
    print_json,
    url_option,
)
from agent.cli.options import Seconds, json_option, resource_argument, seconds_option
from agent.cli.table import RESOURCE_HEADER, print_resources, resource_rows
from agent.coordinator.status import WAITING

FAILING = frozenset(state.value for state in WAITING)
TIMEOUT = Seconds()
LEASE = Seconds()


def printer(as_json: bool, text: Callable[[Any], None]) -> Callable[[Any], None]:
    """What prints an answer: the JSON for ``--json``, else ``text``."""
    return print_json if as_json else text


def print_table(data: Any) -> None:
    """``list``'s table."""
    print_resources(data["resources"])


@main.command(name="list")
@url_option
@json_option
@click.option(
    "--watch",
    is_flag=True,
    help="Keep following the agent's event stream: the table again on every change "
    "(with --json: one JSON event per line).",
)
def list_(url: str, as_json: bool, watch: bool) -> None:
    """List resources: state, which Jenkins and job hold each, since when, until when, health."""
    if watch:
        from agent.cli.watch import watch_resources

        watch_resources(url, as_json)
        return
    call(url, lambda c: c.get("resources"), printer(as_json, print_table))


def print_resource(res: Any) -> None:
    """``show``'s text: one fact per line."""
    [row] = resource_rows([res])
    facts = dict(zip(RESOURCE_HEADER, row, strict=True))
    hold = res.get("holder") or {}
    click.echo(f"{res['id']}: {res['name']} ({res['kind']})")
    if res["description"]:
        click.echo(f"  description: {res['description']}")
    click.echo(f"  state:       {facts['STATE']}")
    if hold:
        who = hold["holder"]
        click.echo(f"  holder:      {who['id']} {who['url']}".rstrip())
        click.echo(f"  since:       {hold['since']} ({facts['SINCE']} ago)")
        click.echo(f"  expires:     {hold['expires'] or 'never'}")
    click.echo(f"  health:      {facts['HEALTH']}")
    for name, value in sorted(res["metadata"].items()):
        click.echo(f"  {name}: {value}")


@main.command()
@url_option
@json_option
@resource_argument
def show(url: str, as_json: bool, resource_id: str) -> None:
    """Show one resource: its state, holder, health and metadata."""
    call(url, lambda c: c.get(c.resource_path(resource_id)), printer(as_json, print_resource))


@main.command()
@url_option
@json_option
@resource_argument
@seconds_option("--timeout", "How long the reservation lasts", TIMEOUT, default=300.0)
def reserve(url: str, as_json: bool, resource_id: str, timeout: float) -> None:
    """Reserve a resource; prints the key that locks or releases it."""
    body = {"timeout": timeout, "holder": holder_name()}
    call(url, lambda c: c.post(c.resource_path(resource_id, "reserve"), body),
         printer(as_json, print_hold))  # fmt: skip


@main.command()
@url_option
@json_option
@resource_argument
@click.option("--key", help="The reservation's key; without it a free resource is locked.")
@seconds_option(
    "--lease", "The lock ends by itself after this long; default: no lease, held until released",
    LEASE,
)  # fmt: skip
def lock(url: str, as_json: bool, resource_id: str, key: str | None, lease: float | None) -> None:
    """Lock a resource (a reservation with its key, or a free one); prints the key."""
    body: dict[str, Any] = {"holder": holder_name()}
    if key is not None:
        body["key"] = key
    if lease is not None:
        body["lease"] = lease
    call(url, lambda c: c.post(c.resource_path(resource_id, "lock"), body),
         printer(as_json, print_hold))  # fmt: skip


@main.command()
@url_option
@json_option
@resource_argument
@click.option("--key", help="The hold's key.")
@click.option("--force", is_flag=True, help="Release whoever holds it (administrators).")
def release(url: str, as_json: bool, resource_id: str, key: str | None, force: bool) -> None:
    """Release a reservation or lock (with its key, or --force)."""
    if key is None and not force:
        raise click.UsageError("give --key, or --force to release someone else's hold")
    body: dict[str, Any] = {"force": force}
    if key is not None:
        body["key"] = key
    call(url, lambda c: c.post(c.resource_path(resource_id, "release"), body),
         printer(as_json, lambda d: click.echo(f"released {d['resource']['id']}")))  # fmt: skip


@main.command()
@url_option
@json_option
@resource_argument
@click.option("--key", required=True, help="The hold's key.")
@seconds_option("--lease", "New length from now; default: the hold's own length again", LEASE)
def renew(url: str, as_json: bool, resource_id: str, key: str, lease: float | None) -> None:
    """Push a reservation's or a lock's deadline."""
    body: dict[str, Any] = {"key": key}
    if lease is not None:
        body["lease"] = lease
    call(url, lambda c: c.post(c.resource_path(resource_id, "renew"), body),
         printer(as_json, print_hold))  # fmt: skip


def _switch(url: str, as_json: bool, resource_id: str, action: str, body: dict[str, Any]) -> None:
    call(url, lambda c: c.post(c.resource_path(resource_id, action), body),
         printer(as_json, lambda d: click.echo(f"{action}d {d['id']}")))  # fmt: skip


@main.command()
@url_option
@json_option
@resource_argument
def enable(url: str, as_json: bool, resource_id: str) -> None:
    """Let a resource take holds again (clears a quarantine or a failed teardown)."""
    _switch(url, as_json, resource_id, "enable", {})


@main.command()
@url_option
@json_option
@resource_argument
@click.option("--reason", default="", help="Why, for the people who will wonder (default: none).")
def disable(url: str, as_json: bool, resource_id: str, reason: str) -> None:
    """Stop a resource from taking new holds (an existing one stays)."""
    _switch(url, as_json, resource_id, "disable", {"reason": reason})


@main.command()
@url_option
@json_option
@resource_argument
def forget(url: str, as_json: bool, resource_id: str) -> None:
    """Drop an absent resource for good (administrators): a phone that is not coming back."""
    call(url, lambda c: c.post(c.resource_path(resource_id, "forget"), {}),
         printer(as_json, lambda d: click.echo(f"forgot {d['id']}")))  # fmt: skip


def _print_history(data: Any) -> None:
    rows = [("TIME", "ACTION", "HOLDER", "BY", "DETAIL")]
    for a in data["actions"]:
        holder = a["holder"] or {}
        who = " ".join(p for p in (holder.get("id"), holder.get("url")) if p)
        caller = a["caller"]
        by = f"{caller['address']} ({caller['token'] or 'no token'})" if caller else "agent"
        rows.append((a["at"], a["action"], who, by, a["detail"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        click.echo("  ".join([*cells, row[4]]).rstrip())


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (holds and actions).")
def history(url: str, resource_id: str, limit: int, as_json: bool) -> None:
    """Every change to a resource, newest first: what, when, whose, asked by whom."""
    call(
        url,
        lambda c: c.get(f"{c.resource_path(resource_id, 'history')}?limit={limit}"),
        print_json if as_json else _print_history,
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
@json_option
def status(url: str, as_json: bool) -> None:
    """Show each coordinator's sync, then one line per problem; exit 1 if a coordinator fails."""
    with client(url) as c:
        data = c.get("coordinators")
        problems = c.get("health")["problems"]
    if as_json:
        print_json({**data, "problems": problems})
    else:
        _print_coordinators(data)
        for problem in problems:
            click.echo(f"problem: {problem}")
    if any(co["state"] in FAILING for co in data["coordinators"]):
        sys.exit(Failed.exit_code)


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--reason", default="an administrator asked", help="Why, for the log.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1, max=3600),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the ladder to end.",
)
def recover(url: str, resource_id: str, reason: str, timeout: float) -> None:
    """Bring a stuck phone back now: reconnect, soft replug, power cycle, else quarantine."""

    def show(d: Any) -> None:
        state = d["resource"]["state"]
        click.echo(f"{resource_id} {'is back' if d['recovered'] else 'is not back'} ({state})")
        if not d["recovered"]:
            raise Failed(f"{resource_id} did not come back; see the agent's log")

    call(
        url,
        lambda c: c.post(c.resource_path(resource_id, "recover"), {"reason": reason}),
        show,
        timeout=timeout,
    )

"""Commands on resources and coordinators, through the agent's REST API."""

from __future__ import annotations

import sys
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
from agent.coordinator.status import WAITING

FAILING = frozenset(state.value for state in WAITING)


def _holder_text(res: dict[str, Any]) -> str:
    holder = res.get("holder")
    if not holder:
        # The reason outlives the disable (until a new one); it explains only a disabled one.
        reason = res.get("disabled_reason") if res.get("state") == "disabled" else None
        return res.get("health") or reason or ""
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


@main.command(name="list")
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(url: str, as_json: bool) -> None:
    """List resources and who holds them."""
    call(url, lambda c: c.get("resources"), print_json if as_json else _print_table)


@main.command()
@url_option
@click.argument("resource_id")
def show(url: str, resource_id: str) -> None:
    """Show one resource as JSON."""
    call(url, lambda c: c.get(c.resource_path(resource_id)), print_json)


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300.0)
def reserve(url: str, resource_id: str, timeout: float) -> None:
    """Reserve a resource; prints the key."""
    body = {"timeout": timeout, "holder": holder_name()}
    call(url, lambda c: c.post(c.resource_path(resource_id, "reserve"), body), print_hold)


@main.command()
@url_option
@click.argument("resource_id")
@click.option("--key", help="The reservation's key; without it a free resource is locked.")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), help="Lease in seconds.")
def lock(url: str, resource_id: str, key: str | None, lease: float | None) -> None:
    """Lock a resource; prints the key."""
    body: dict[str, Any] = {"holder": holder_name()}
    if key is not None:
        body["key"] = key
    if lease is not None:
        body["lease"] = lease
    call(url, lambda c: c.post(c.resource_path(resource_id, "lock"), body), print_hold)


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
    call(
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
    call(url, lambda c: c.post(c.resource_path(resource_id, "renew"), body), print_hold)


@main.command()
@url_option
@click.argument("resource_id")
def enable(url: str, resource_id: str) -> None:
    """Let a resource take holds again."""
    call(
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
    call(
        url,
        lambda c: c.post(c.resource_path(resource_id, "disable"), {"reason": reason}),
        lambda d: click.echo(f"disabled {d['id']}"),
    )


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
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

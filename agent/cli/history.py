"""``resource-agent history ID``: who held a resource and how each hold ended, then every change.

Two tables: the holds (one line each, for "who had it when"), and the audit
trail's changes (what, when, whose, asked by whom -- the same facts as the
``agent.audit`` log lines).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from agent.cli.base import call, main, url_option
from agent.cli.options import json_option, resource_argument
from agent.cli.resources import printer
from agent.cli.table import render, span, system

MAX_LIMIT = 10000  # what the agent answers at most
HEADER = ("KIND", "JENKINS", "JOB / WHO", "RESERVED", "LOCKED", "ENDED", "HELD", "HOW")
CHANGES = ("TIME", "ACTION", "JENKINS", "JOB / WHO", "ASKED BY", "DETAIL")


def _held(entry: dict[str, Any]) -> str:
    began = entry["reserved_at"] or entry["locked_at"]
    if not began or not entry["ended_at"]:
        return "-" if not began else "now"
    seconds = datetime.fromisoformat(entry["ended_at"]) - datetime.fromisoformat(began)
    return span(seconds.total_seconds())


def _asked_by(caller: dict[str, Any] | None) -> str:
    if caller is None:
        return "agent"
    return f"{caller['address']} ({caller['token'] or 'no token'})"


def print_history(data: Any) -> None:
    """The holds, one line each, then every change; newest first."""
    holds = [
        (
            e["kind"],
            system(e["holder"]["id"]),
            e["holder"]["url"] or "-",
            e["reserved_at"] or "-",
            e["locked_at"] or "-",
            e["ended_at"] or "-",
            _held(e),
            e["end_reason"] or "holds it now",
        )
        for e in data["history"]
    ]
    click.echo(render(HEADER, holds, (2, 1)) if holds else "no holds yet")
    changes = [
        (
            a["at"],
            a["action"],
            system(a["holder"]["id"]) if a["holder"] else "-",
            (a["holder"] or {}).get("url") or "-",
            _asked_by(a["caller"]),
            a["detail"] or "-",
        )
        for a in data["actions"]
    ]
    if changes:
        click.echo()
        click.echo(render(CHANGES, changes, (5, 3, 2)))


@main.command()
@url_option
@json_option
@resource_argument
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=20,
    show_default=True,
    help="How many of the latest holds, and of the latest changes, to show.",
)
def history(url: str, as_json: bool, resource_id: str, limit: int) -> None:
    """Who held a resource and how each hold ended, then every change to it; newest first."""
    call(url, lambda c: c.get(f"{c.resource_path(resource_id, 'history')}?limit={limit}"),
         printer(as_json, print_history))  # fmt: skip

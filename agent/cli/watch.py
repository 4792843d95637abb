"""``list --watch``: the agent's event stream (``GET /api/events``), followed until Ctrl-C.

The table is printed again on every change (the screen cleared first on a
terminal); with ``--json`` each event is one line of JSON, for scripts. When
the agent restarts, the stream is taken up again where it broke off
(``Last-Event-ID``), or from a fresh snapshot.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from agent.cli.base import NoAgent
from agent.cli.table import print_resources
from agent.client import ApiRefusal, Client, Unreachable

RECONNECT = 1.0  # seconds between attempts while the agent is away


def events(client: Client, last_id: str | None) -> Iterator[tuple[str, str, Any]]:
    """(id, event name, data) of each server-sent event, as it comes."""
    fields: dict[str, str] = {}
    headers = {"Last-Event-ID": last_id} if last_id else {}
    for line in client.stream("events", headers=headers):
        if not line:
            if "data" in fields:
                yield (
                    fields.get("id", ""),
                    fields.get("event", "message"),
                    json.loads(fields["data"]),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def watch_resources(url: str, as_json: bool) -> None:
    """Follow the stream and print; returns only on Ctrl-C."""
    client = Client(url)
    resources: dict[str, Any] = {}
    last_id: str | None = None
    connected = False
    try:
        while True:
            try:
                for event_id, name, data in events(client, last_id):
                    connected, last_id = True, event_id
                    if as_json:
                        click.echo(json.dumps({"id": event_id, "event": name, "data": data}))
                        continue
                    if name == "snapshot":
                        resources = {r["id"]: r for r in data["resources"]}
                    elif name == "resource":
                        res = data["resource"]
                        if data["type"] == "removed":
                            resources.pop(res["id"], None)
                        else:
                            resources[res["id"]] = res
                    if name != "coordinators":
                        _redraw(resources)
            except (Unreachable, ApiRefusal) as exc:
                if not connected:
                    raise NoAgent(f"resource-agent: {exc}") from exc
            click.echo(f"resource-agent: the stream from {url} ended; reconnecting", err=True)
            time.sleep(RECONNECT)
    except KeyboardInterrupt:
        return


def _redraw(resources: dict[str, Any]) -> None:
    if sys.stdout.isatty():
        click.clear()
    else:
        click.echo(f"--- {datetime.now().astimezone().isoformat(timespec='seconds')}")
    print_resources([resources[k] for k in sorted(resources)])

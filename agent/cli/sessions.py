"""``resource-agent session``: a session's log, and the build step that waits for it."""

from __future__ import annotations

import json
from typing import Any

import click

from agent.cli.base import Failed, call, client, main, quoted, url_option
from agent.cli.options import json_option
from agent.client import Client


@main.group()
def session() -> None:
    """Sessions: how a resource was prepared for a lock and cleaned after it."""


def follow(c: Client, session_id: str) -> dict[str, Any]:
    """Print the session's log as it grows until its phase ends; answer the session."""
    for line in c.stream(f"sessions/{session_id}/log?follow=1"):
        click.echo(line)
    answer: dict[str, Any] = c.get(f"sessions/{session_id}")
    return answer


def failure(record: dict[str, Any]) -> str:
    """Why a session's provisioning failed, in one line."""
    step = f" at step {record['failed_step']}" if record.get("failed_step") else ""
    return f"provisioning {record['resource']} failed{step}: {record.get('message')}"


@session.command()
@url_option
@click.option(
    "--resource",
    envvar="MD_EXTERNAL_RESOURCES_LOCKED_ID",
    show_envvar=True,
    help="The locked resource (Jenkins sets the variable for the build).",
)
@click.option(
    "--build-url",
    envvar="BUILD_URL",
    show_envvar=True,
    help="The build holding it (Jenkins sets BUILD_URL).",
)
def wait(url: str, resource: str | None, build_url: str | None) -> None:
    """Print this build's provisioning log as it runs; exit 0 when it succeeded.

    A Jenkins build step: a failed preparation fails the build, with its log
    in the build log.
    """
    if not resource or not build_url:
        raise click.UsageError(
            "give --resource and --build-url (in a Jenkins build: MD_EXTERNAL_RESOURCES_LOCKED_ID "
            "and BUILD_URL are set when the build holds a resource)"
        )
    with client(url) as c:
        found = c.get(f"sessions?resource={quoted(resource)}&holder={quoted(build_url)}&limit=1")
        if not found["sessions"]:
            res = c.get(c.resource_path(resource))
            hold = res.get("holder") or {}
            who = hold.get("holder") or {}
            if build_url not in (who.get("url"), f"{who.get('id')}{who.get('url')}"):
                raise Failed(f"resource {resource} is not locked by {build_url}")
            click.echo(f"resource {resource} has no session: nothing to prepare")
            return
        record = follow(c, found["sessions"][0]["id"])
    if record["status"] not in ("ready", "provisioning"):
        raise Failed(failure(record))
    click.echo(f"resource {resource} is ready")


@session.command()
@url_option
@json_option
@click.argument("session_id")
@click.option("--follow", "follow_", is_flag=True, help="Keep printing while the phase runs.")
def log(url: str, as_json: bool, session_id: str, follow_: bool) -> None:
    """Print a session's log (with --json: one JSON string per line)."""
    query = "?follow=1" if follow_ else ""

    def show(lines: Any) -> None:
        for line in lines:
            click.echo(json.dumps(line) if as_json else line)

    call(url, lambda c: c.stream(f"sessions/{quoted(session_id)}/log{query}"), show)

"""Tables for people: the columns of ``list`` and ``history``, cut to the terminal's width.

Times are shown relative to now (``12m``, ``in 4m``); the JSON (``--json``)
keeps the exact ones. When the table is wider than the terminal, the widest
free-text columns (health, job) give up characters first, cut with ``…``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

MIN_WIDTH = 6  # a column is never cut below this
CUT = "…"


def ago(iso: str | None, now: datetime | None = None) -> str:
    """How long ago ``iso`` was: ``45s``, ``12m``, ``3h05m``, ``2d04h``; ``-`` for none."""
    if not iso:
        return "-"
    return span(((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds())


def until(iso: str | None, now: datetime | None = None) -> str:
    """How long until ``iso``: ``in 4m``, ``now``; ``-`` for none."""
    if not iso:
        return "-"
    left = (datetime.fromisoformat(iso) - (now or datetime.now(UTC))).total_seconds()
    return f"in {span(left)}" if left >= 1 else "now"


def span(seconds: float) -> str:
    """A duration in its two largest units."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def system(holder_id: str) -> str:
    """A holder's system, short: a Jenkins root URL without scheme and slash."""
    for scheme in ("https://", "http://"):
        holder_id = holder_id.removeprefix(scheme)
    return holder_id.rstrip("/")


def state_text(res: dict[str, Any]) -> str:
    """The state word, and ``disabled`` beside a hold that outlives an administrator's switch."""
    state = str(res["state"])
    if res.get("holder") and not res.get("enabled", True):
        return f"{state},disabled"
    return state


def health_text(res: dict[str, Any]) -> str:
    """What is wrong with it: disabled (and why), its problem, not connected."""
    parts = []
    if not res.get("enabled", True):
        reason = res.get("disabled_reason")
        parts.append(f"disabled: {reason}" if reason else "disabled")
    problem = res.get("problem") or res.get("health")
    if problem:
        parts.append(str(problem))
    if not res.get("present", True) and res["state"] != "absent":
        parts.append("not connected")
    return "; ".join(parts) or "-"


RESOURCE_HEADER = ("ID", "KIND", "STATE", "JENKINS", "JOB", "SINCE", "EXPIRES", "HEALTH")
CUTTABLE = (7, 4, 3, 0)  # health, job, Jenkins, id: the order columns give up width


def resource_rows(resources: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per resource, in RESOURCE_HEADER's columns."""
    rows: list[tuple[str, ...]] = []
    for res in resources:
        hold = res.get("holder") or {}
        who = hold.get("holder") or {}
        rows.append(
            (
                str(res["id"]),
                str(res["kind"]),
                state_text(res),
                system(who["id"]) if who else "-",
                who.get("url") or "-",
                ago(hold.get("since")),
                until(hold.get("expires")),
                health_text(res),
            )
        )
    return rows


def width() -> int | None:
    """The terminal's width, or None when the output is no terminal (nothing is cut)."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def render(
    header: Sequence[str], rows: Sequence[Sequence[str]], cuttable: Sequence[int] = ()
) -> str:
    """Aligned columns, two spaces apart; cut to the terminal's width if need be."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    limit = width()
    if limit is not None:
        over = sum(widths) + 2 * (len(widths) - 1) - limit
        for col in cuttable:
            if over <= 0:
                break
            give = min(over, widths[col] - max(MIN_WIDTH, len(header[col])))
            if give > 0:
                widths[col] -= give
                over -= give
    lines = []
    for r in table:
        cells = [_cut(c, w).ljust(w) for c, w in zip(r, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_resources(resources: Sequence[dict[str, Any]]) -> None:
    """``list``'s table, on stdout."""
    click.echo(render(RESOURCE_HEADER, resource_rows(resources), CUTTABLE))


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1] + CUT

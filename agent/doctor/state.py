"""Checks of who the agent runs as and of its state database."""

from __future__ import annotations

import os
import pwd
import sqlite3
from pathlib import Path

from agent import records
from agent.config import Settings, resolve_state_dir
from agent.core import STATE_FILE
from agent.doctor.report import Check, failed, passed
from agent.doctor.system import AGENT_USER, AgentUser


def check_user(name: str | None, user: AgentUser) -> Check:
    """Say whose access the file checks judge, and why that user."""
    if name is not None:
        why = "--user"
    elif user.name == AGENT_USER:
        why = "the user the installed unit runs the agent as"
    else:
        why = f"whoever runs doctor: there is no {AGENT_USER} user (make install creates it)"
    return passed("user", f"file access is judged for {user.name} ({why})")


def unknown_user(name: str) -> Check:
    """``--user`` names nobody on this machine."""
    return failed(
        "user",
        f"there is no user {name!r} on this machine, so file access cannot be judged for it",
        f"give --user the user the agent runs as (the unit runs it as {AGENT_USER}), "
        f"or leave --user out",
    )


def check_database(settings: Settings, user: AgentUser) -> Check:
    """The state database opens and reads (read-only: doctor changes nothing)."""
    name = "state database"
    path = resolve_state_dir(settings) / STATE_FILE
    if not path.exists():
        return passed(name, f"{path} does not exist yet; the agent creates it at its first start")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM resources").fetchall()
            resources = [records.row_resource(r) for r in rows]
        finally:
            conn.close()
    except (sqlite3.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        return failed(
            name,
            f"{path} cannot be read: {exc}",
            f"stop the agent, move {path} aside (its holds are lost; mv {path} {path}.broken) "
            "and start it again, or restore it from a backup",
        )
    if not user.can(path.stat(), os.R_OK | os.W_OK):
        owner = _owner(path)
        return failed(
            name,
            f"{path} (owned by {owner}) is not read-write for {user.name}",
            f"chown {user.name}: {path}*",
        )
    held = sum(r.hold is not None for r in resources)
    return passed(name, f"{path} opens: {len(resources)} resources, {held} held")


def _owner(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

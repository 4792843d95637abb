"""A process's children, from /proc: the agent's is its store writer (agent/store_writer.py)."""

from __future__ import annotations

from pathlib import Path


def stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc ``stat`` file after the command name (which may hold spaces)."""
    return stat.read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(stat_fields(entry / "stat")[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue  # gone meanwhile
    return found

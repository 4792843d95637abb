"""A process's children, from /proc, and among the agent's its store writer
(agent/store_writer.py)."""

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


def store_writers(pid: int) -> list[int]:
    """The children of agent ``pid`` that are its store writer (one, or none between two)."""
    found = []
    for child in children(pid):
        try:
            if b"agent.store_writer" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue  # gone meanwhile
    return found

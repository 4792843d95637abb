"""How times are written: ISO 8601 with the machine's offset, to the second."""

from __future__ import annotations

from datetime import datetime


def local_offset(epoch: float) -> int:
    """The machine's UTC offset at that instant, in seconds."""
    offset = datetime.fromtimestamp(epoch).astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def isotime(epoch: float) -> str:
    """ISO 8601 with the local offset, to the second: 2026-11-24T10:15:30+01:00."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def maybe_isotime(epoch: float | None) -> str | None:
    """``isotime``, or None for no time."""
    return None if epoch is None else isotime(epoch)

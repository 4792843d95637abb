"""How times are written: ISO 8601 with the machine's offset, to the second."""

from __future__ import annotations

import functools
import time
from datetime import datetime


def zoned(second: int) -> tuple[int, str]:
    """The machine's UTC offset at that whole second (in seconds), and ``isotime`` of it.

    Remembered for a few seconds: every answer in the same second names it.
    """
    return _zoned(second, time.tzname)


@functools.lru_cache(maxsize=8)
def _zoned(second: int, zone: tuple[str, str]) -> tuple[int, str]:
    # ``zone`` (time.tzname) is in the key so that time.tzset() to another zone is obeyed.
    local = datetime.fromtimestamp(second).astimezone()
    offset = local.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0, local.isoformat()


def isotime(epoch: float) -> str:
    """ISO 8601 with the local offset, to the second: 2026-11-24T10:15:30+01:00."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def maybe_isotime(epoch: float | None) -> str | None:
    """``isotime``, or None for no time."""
    return None if epoch is None else isotime(epoch)

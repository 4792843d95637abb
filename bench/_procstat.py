"""Process figures from /proc, for benchmarks that report the agent's CPU and memory."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.procs import children, stat_fields


def cpu_seconds(pid: int, thread: int | None = None, *, tree: bool = True) -> float:
    """User plus system CPU time the process (or one of its threads) has used so far; a
    process's figure includes its live children's (the agent's writer is one) unless
    ``tree`` is false."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat_fields(stat)
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if thread is not None or not tree:
        return own
    return own + sum(cpu_seconds(child) for child in children(pid))


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its live children in MiB."""
    own = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            own = int(line.split()[1]) / 1024
    return own + sum(rss_mib(child) for child in children(pid))

"""Process figures from /proc, for benchmarks that report the agent's CPU and memory."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User plus system CPU time the process (or one of its threads) has used so far."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    # The command name (field 2) may hold spaces; the fields after ')' are fixed.
    fields = stat.read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of the process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

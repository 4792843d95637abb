"""Durable operations per second: 32 Jenkins-like clients against the real agent.

Each client owns one static resource and loops Reserve -> Lock -> Release over
JSON-RPC, exactly as Jenkins sends them. Every OK answer is an acknowledged,
committed change (the store commits before the answer), so ops/s here is the
durable write rate. Prints throughput, latency percentiles and the agent's CPU.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bench._jsonrpc_load import run_load
from bench._procstat import cpu_seconds, rss_mib
from tests.agentproc import AgentProcess

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))


def _fs_of(path: str) -> str:
    """The file system type under ``path`` (fsync cost depends on it)."""
    best = ("", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if path.startswith(mount) and len(mount) > len(best[0]):
            best = (mount, fstype)
    return f"{best[1]} ({best[0]})"


def main() -> None:
    """Run the load and print the figures."""
    resources = [f"bench-{i}" for i in range(CLIENTS)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        AgentProcess(Path(tmp), resources=resources, log_level="warning") as agent,
    ):
        cpu_before = cpu_seconds(agent.pid)
        own_before = cpu_seconds(os.getpid(), tree=False)
        load = asyncio.run(run_load(agent.host, agent.port, CLIENTS, SECONDS))
        own = cpu_seconds(os.getpid(), tree=False) - own_before
        cpu = cpu_seconds(agent.pid) - cpu_before
        rss = rss_mib(agent.pid)
    elapsed = load.seconds
    print(f"clients: {CLIENTS}, duration: {elapsed:.1f} s, state dir on {_fs_of(tmp)}")
    print(f"durable operations: {load.ops} ({load.rate:.0f} ops/s)")
    print(f"latency: p50 {load.ms(0.5):.2f} ms, p99 {load.ms(0.99):.2f} ms")
    print(f"agent CPU: {cpu:.2f} s ({cpu / elapsed * 100:.0f}% of one core), RSS {rss:.0f} MiB")
    print(f"load generator CPU: {own:.2f} s ({own / elapsed * 100:.0f}% of one core)")
    sys.stdout.flush()

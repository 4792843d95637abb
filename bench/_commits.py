"""What each change bought: agents from several commits beside the bare server, in turns.

``.venv/bin/python -m bench._commits NAME=COMMIT [NAME=COMMIT ...]`` checks each
commit out in a git worktree of its own (removed afterwards), starts an agent from
each (``PYTHONPATH`` at its worktree; this checkout's venv), starts
bench/ceiling.py's bare server, and drives them all in turns with
bench/_jsonrpc_load.py's clients (BENCH_CLIENTS=32, BENCH_SECONDS=4 per turn,
BENCH_TURNS=3). Prints each one's median rate, its ratio to the bare server's turn
that follows it (median over the turns), CPU per operation and p99. A tool for
docs/benchmarks.md's "What each change bought", not part of ``make bench``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench._jsonrpc_load import run_load
from bench._procstat import cpu_seconds
from bench.ceiling import bare_server
from tests.agentproc import AgentProcess
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
TURNS = int(os.environ.get("BENCH_TURNS", "3"))
BARE = "bare aiohttp"


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the load against one server."""

    rate: float
    cpu_us: float
    p99_ms: float


@contextlib.contextmanager
def _worktree(commit: str, parent: Path) -> Iterator[Path]:
    path = parent / commit
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                       check=False, capture_output=True)  # fmt: skip


def _turn(pid: int, port: int) -> Turn:
    before = cpu_seconds(pid)
    load = asyncio.run(run_load("127.0.0.1", port, CLIENTS, SECONDS))
    return Turn(load.rate, (cpu_seconds(pid) - before) / load.ops * 1e6, load.ms(0.99))


def main(steps: list[tuple[str, str]]) -> None:
    """Run the turns and print one line per commit, then the bare server's."""
    turns: dict[str, list[Turn]] = {name: [] for name in [*(name for name, _ in steps), BARE]}
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        servers: list[tuple[str, int, int]] = []  # name, pid, port
        for name, commit in steps:
            tree = stack.enter_context(_worktree(commit, Path(work)))
            agent = stack.enter_context(
                AgentProcess(Path(work) / f"agent-{commit}",
                             resources=[f"bench-{i}" for i in range(CLIENTS)],
                             log_level="warning", env={"PYTHONPATH": str(tree)})
            )  # fmt: skip
            servers.append((name, agent.pid, agent.port))
        port = free_port()
        bare = bare_server(port)
        stack.callback(bare.wait, 10)
        stack.callback(bare.terminate)
        servers.append((BARE, bare.pid, port))
        for number in range(1, TURNS + 1):
            for name, pid, server_port in servers:
                turn = _turn(pid, server_port)
                turns[name].append(turn)
                print(f"turn {number} {name:40} {turn.rate:7.0f} ops/s  {turn.cpu_us:4.0f} µs/op"
                      f"  p99 {turn.p99_ms:.1f} ms", flush=True)  # fmt: skip
    print(f"{'':40} {'ops/s':>7} {'ratio':>6} {'µs/op':>6} {'p99 ms':>7}")
    for name, done in turns.items():
        ratio = statistics.median(t.rate / b.rate for t, b in zip(done, turns[BARE], strict=True))
        print(f"{name:40} {statistics.median(t.rate for t in done):7.0f} {ratio:6.2f} "
              f"{statistics.median(t.cpu_us for t in done):6.0f} "
              f"{statistics.median(t.p99_ms for t in done):7.1f}")  # fmt: skip


if __name__ == "__main__":
    pairs = [arg.rpartition("=") for arg in sys.argv[1:]]
    if not pairs or any(not sep or not name for name, sep, _ in pairs):
        sys.exit("usage: python -m bench._commits NAME=COMMIT [NAME=COMMIT ...]")
    main([(name, commit) for name, _, commit in pairs])

"""The agent beside the ceiling: a bare aiohttp server answering the same JSON-RPC, one run.

Absolute rates drift by 2x between days on these shared machines; a ratio
measured in one run does not. The same load generator (bench/_jsonrpc_load.py:
32 Jenkins-like clients looping Reserve, Lock, Release) drives, in turns A B A B,

- A: the real agent (every OK answer committed to SQLite before it is sent);
- B: a bare aiohttp server in its own process that parses each request and
  answers a seven-field result of the same size, with no state and no disk.

Prints each turn and, per side, the median rate and latencies, then the ratio.
``python -m bench ceiling`` (BENCH_CLIENTS, BENCH_SECONDS per turn, BENCH_TURNS).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from aiohttp import web

from bench._jsonrpc_load import Load, run_load
from bench._procstat import cpu_seconds
from tests.agentproc import AgentProcess
from tests.support.net import free_port
from tests.support.waiting import wait_for

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
TURNS = int(os.environ.get("BENCH_TURNS", "3"))


async def _answer(request: web.Request) -> web.Response:
    call = json.loads(await request.read())
    now = time.time()
    result = {
        "status": "OK",
        "code": 0,
        "message": f"done {call['params']['resource']}",
        "key": secrets.token_urlsafe(18),
        "time": int(now * 1000),
        "timezone": 0,
        "isotime": datetime.fromtimestamp(int(now)).astimezone().isoformat(timespec="seconds"),
    }
    body = json.dumps({"jsonrpc": "2.0", "result": result, "id": call["id"]})
    return web.Response(text=body, content_type="application/json-rpc")


def serve(port: int) -> None:
    """The bare server (run as ``python -m bench.ceiling PORT``)."""
    app = web.Application()
    app.router.add_post("/", _answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _bare(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.ceiling", str(port)])
    wait_for(lambda: _listening(port), timeout=10, what="the bare server")
    return proc


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _turn(pid: int, port: int) -> tuple[Load, float]:
    """One turn of the load against ``port``, and the server's CPU per operation (µs)."""
    before = cpu_seconds(pid)
    load = asyncio.run(run_load("127.0.0.1", port, CLIENTS, SECONDS))
    return load, (cpu_seconds(pid) - before) / load.ops * 1e6


def _line(name: str, loads: list[Load], cpus: list[float]) -> tuple[float, float, float]:
    rate = statistics.median(x.rate for x in loads)
    p50 = statistics.median(x.ms(0.5) for x in loads)
    p99 = statistics.median(x.ms(0.99) for x in loads)
    cpu = statistics.median(cpus)
    print(f"{name:34} {rate:7.0f} ops/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
          f"CPU {cpu:4.0f} µs/op")  # fmt: skip
    return rate, p50, p99


def main() -> None:
    """Run the turns and print both sides and the ratio."""
    resources = [f"bench-{i}" for i in range(CLIENTS)]
    port = free_port()
    runs: dict[str, tuple[list[Load], list[float]]] = {"agent": ([], []), "bare": ([], [])}
    with (
        tempfile.TemporaryDirectory() as tmp,
        AgentProcess(Path(tmp), resources=resources, log_level="warning") as agent,
    ):
        bare = _bare(port)
        try:
            for turn in range(TURNS):
                for name, pid, target in (("agent", agent.pid, agent.port),
                                          ("bare", bare.pid, port)):  # fmt: skip
                    load, cpu = _turn(pid, target)
                    runs[name][0].append(load)
                    runs[name][1].append(cpu)
                    print(f"turn {turn + 1} {name:5} {load.rate:7.0f} ops/s  "
                          f"p50 {load.ms(0.5):.2f} ms  p99 {load.ms(0.99):.2f} ms  "
                          f"CPU {cpu:.0f} µs/op")  # fmt: skip
        finally:
            bare.terminate()
            bare.wait(10)
    print(f"{CLIENTS} clients, {TURNS} turns of {SECONDS:g} s each, medians:")
    agent_rate, _, agent_p99 = _line("agent (durable)", *runs["agent"])
    bare_rate, _, _ = _line("bare aiohttp (no state, no disk)", *runs["bare"])
    print(
        f"agent / bare: {agent_rate / bare_rate:.2f} of the ceiling; agent p99 {agent_p99:.2f} ms"
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]))

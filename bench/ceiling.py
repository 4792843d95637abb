"""The agent beside the ceiling: a bare aiohttp server answering the same JSON-RPC, one run.

Absolute rates drift by 2x between days on these shared machines; a ratio
measured in one run does not. The same load generator (bench/_jsonrpc_load.py:
32 Jenkins-like clients looping Reserve, Lock, Release) drives, in turns A B A B,

- A: the real agent (every OK answer committed to SQLite before it is sent);
- B: a bare aiohttp server in its own process that parses each request and
  answers a seven-field result of the same size, with no state and no disk;
- C: the same answers from a bare HTTP/1.1 reader on uvloop (an asyncio
  protocol, no aiohttp): the ceiling of the agent's own express lane
  (agent/api/express.py), which answers Jenkins' calls without aiohttp's
  request machinery.

Prints each turn and, per side, the median rate and latencies, then the ratios.
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import uvloop
from aiohttp import web

from bench._jsonrpc_load import Load, run_load
from bench._procstat import cpu_seconds
from tests.agentproc import AgentProcess
from tests.support.net import free_port
from tests.support.waiting import wait_for

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
TURNS = int(os.environ.get("BENCH_TURNS", "3"))


def _result_for(call: dict[str, Any]) -> bytes:
    """The JSON-RPC answer to ``call``: a seven-field result as the agent's, made up."""
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
    return json.dumps({"jsonrpc": "2.0", "result": result, "id": call["id"]}).encode()


async def _answer(request: web.Request) -> web.Response:
    body = _result_for(json.loads(await request.read()))
    return web.Response(body=body, content_type="application/json-rpc")


class _Lean(asyncio.Protocol):
    """Just enough HTTP/1.1 for the load generator: a head, a Content-Length, a body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            start = end + 4
            body, self.buffer = self.buffer[start : start + length], self.buffer[start + length :]
            answer = _result_for(json.loads(body))
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json-rpc\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )


async def _serve_lean(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Lean, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def serve(port: int, kind: str) -> None:
    """A bare server (run as ``python -m bench.ceiling PORT aiohttp|lean``)."""
    if kind == "lean":
        uvloop.run(_serve_lean(port))
        return
    app = web.Application()
    app.router.add_post("/", _answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def bare_server(port: int, kind: str = "aiohttp") -> subprocess.Popen[bytes]:
    """A bare server (``aiohttp`` or ``lean``) in a process of its own, once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.ceiling", str(port), kind])
    wait_for(lambda: _listening(port), timeout=10, what="the bare server")
    return proc


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the load against one server, and the CPU it took per operation (µs)."""

    load: Load
    cpu: float  # every thread of the process
    loop: float  # its main thread: the event loop

    def line(self) -> str:
        """The turn's figures."""
        return (f"{self.load.rate:7.0f} ops/s  p50 {self.load.ms(0.5):6.2f} ms  "
                f"p99 {self.load.ms(0.99):6.2f} ms  CPU {self.cpu:4.0f} µs/op "
                f"(event loop {self.loop:.0f})")  # fmt: skip


def _turn(pid: int, port: int) -> Turn:
    before, loop_before = cpu_seconds(pid), cpu_seconds(pid, pid)
    load = asyncio.run(run_load("127.0.0.1", port, CLIENTS, SECONDS))
    return Turn(load, (cpu_seconds(pid) - before) / load.ops * 1e6,
                (cpu_seconds(pid, pid) - loop_before) / load.ops * 1e6)  # fmt: skip


def _median(turns: list[Turn]) -> Turn:
    """The median turn by rate, with the median CPU figures."""
    by_rate = sorted(turns, key=lambda t: t.load.rate)
    return Turn(by_rate[len(by_rate) // 2].load, statistics.median(t.cpu for t in turns),
                statistics.median(t.loop for t in turns))  # fmt: skip


def main() -> None:
    """Run the turns and print every side and the ratios."""
    resources = [f"bench-{i}" for i in range(CLIENTS)]
    ports = {"bare": free_port(), "lean": free_port()}
    runs: dict[str, list[Turn]] = {"agent": [], "bare": [], "lean": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        AgentProcess(Path(tmp), resources=resources, log_level="warning") as agent,
    ):
        bare, lean = bare_server(ports["bare"]), bare_server(ports["lean"], "lean")
        try:
            for number in range(1, TURNS + 1):
                for name, pid, target in (("agent", agent.pid, agent.port),
                                          ("bare", bare.pid, ports["bare"]),
                                          ("lean", lean.pid, ports["lean"])):  # fmt: skip
                    turn = _turn(pid, target)
                    runs[name].append(turn)
                    print(f"turn {number} {name:5} {turn.line()}", flush=True)
        finally:
            for proc in (bare, lean):
                proc.terminate()
                proc.wait(10)
    print(f"{CLIENTS} clients, {TURNS} turns of {SECONDS:g} s each, the median turns:")
    agent_turn, bare_turn, lean_turn = (_median(runs[name]) for name in ("agent", "bare", "lean"))
    print(f"{'agent (durable)':33} {agent_turn.line()}")
    print(f"{'bare aiohttp (no state, no disk)':33} {bare_turn.line()}")
    print(f"{'bare HTTP reader on uvloop':33} {lean_turn.line()}")
    print(f"agent / bare aiohttp: {agent_turn.load.rate / bare_turn.load.rate:.2f} of the ceiling; "
          f"agent / bare reader: {agent_turn.load.rate / lean_turn.load.rate:.2f}; "
          f"agent p99 {agent_turn.load.ms(0.99):.2f} ms")  # fmt: skip


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])

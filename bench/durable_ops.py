"""Durable operations per second: 32 Jenkins-like clients against the real agent.

Each client owns one static resource and loops Reserve -> Lock -> Release over
JSON-RPC, exactly as Jenkins sends them. Every OK answer is an acknowledged,
committed change (the store commits before the answer), so ops/s here is the
durable write rate. Prints throughput, latency percentiles and the agent's CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procstat import cpu_seconds, rss_mib
from tests.agentproc import AgentProcess

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
JENKINS = {"id": "http://jenkins.example:8080/", "url": "job/bench/"}


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP.

    aiohttp's client costs more CPU per request than the agent does to answer
    it, and on two cores the load generator must not be the bottleneck.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def call(self, method: str, params: dict[str, object]) -> dict[str, Any]:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": f"ResourceMonitor.Resources.{method}",
                "params": params,
                "id": str(time.monotonic_ns()),
            }
        ).encode()
        self.writer.write(
            b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json-rpc\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        answer = json.loads(await self.reader.readexactly(length))
        result: dict[str, Any] = answer["result"]
        if result["status"] != "OK":
            raise RuntimeError(f"{method} refused: {result['message']}")
        return result


async def _client(host: str, port: int, resource: str, until: float, latencies: list[float]) -> int:
    conn = _Connection(*await asyncio.open_connection(host, port))
    done = 0
    key = ""
    while time.monotonic() < until:
        for method, extra in (("Reserve", {"timeout": 30}), ("Lock", {}), ("Release", {})):
            params: dict[str, object] = {"resource": resource, "clientInfo": JENKINS, **extra}
            if method != "Reserve":
                params["key"] = key
            started = time.perf_counter()
            result = await conn.call(method, params)
            latencies.append(time.perf_counter() - started)
            key = str(result["key"])
            done += 1
    conn.writer.close()
    return done


async def _load(host: str, port: int) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    started = time.monotonic()
    until = started + SECONDS
    counts = await asyncio.gather(
        *(_client(host, port, f"bench-{i}", until, latencies) for i in range(CLIENTS))
    )
    return sum(counts), time.monotonic() - started, latencies


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
        own_before = cpu_seconds(os.getpid())
        ops, elapsed, latencies = asyncio.run(_load(agent.host, agent.port))
        own = cpu_seconds(os.getpid()) - own_before
        cpu = cpu_seconds(agent.pid) - cpu_before
        rss = rss_mib(agent.pid)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"clients: {CLIENTS}, duration: {elapsed:.1f} s, state dir on {_fs_of(tmp)}")
    print(f"durable operations: {ops} ({ops / elapsed:.0f} ops/s)")
    print(f"latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"agent CPU: {cpu:.2f} s ({cpu / elapsed * 100:.0f}% of one core), RSS {rss:.0f} MiB")
    print(f"load generator CPU: {own:.2f} s ({own / elapsed * 100:.0f}% of one core)")
    sys.stdout.flush()

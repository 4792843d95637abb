"""The load generator every JSON-RPC benchmark shares: Jenkins' Reserve, Lock, Release loop.

Each client owns one resource (``bench-<n>``) and loops Reserve -> Lock ->
Release over one keep-alive connection, exactly as Jenkins sends them; every
call is one operation and its latency is recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Load:
    """What one run of the generator measured."""

    ops: int
    seconds: float
    latencies: list[float]  # seconds per call, sorted

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.ops / self.seconds

    def ms(self, quantile: float) -> float:
        """A latency percentile (0.5, 0.99) in milliseconds."""
        return (
            self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * quantile))] * 1e3
        )


async def run_load(host: str, port: int, clients: int, seconds: float) -> Load:
    """``clients`` Jenkins-like clients, each on resource ``bench-<n>``, for ``seconds``."""
    latencies: list[float] = []
    started = time.monotonic()
    until = started + seconds
    counts = await asyncio.gather(
        *(_client(host, port, f"bench-{i}", until, latencies) for i in range(clients))
    )
    return Load(sum(counts), time.monotonic() - started, sorted(latencies))

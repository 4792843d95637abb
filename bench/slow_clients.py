"""Jenkins' Reserve latency beside slow-loris clients, with the agent's default limits.

The real agent (default [server] limits: 5 s for a header, 64 connections per
address, 512 in all). Jenkins' Reserve calls come from 127.0.0.1, one fresh
connection each (jsonrpc4j's way), each released after; the slow clients come
from 127.0.0.2 and send their header a byte every 0.2 s, never finishing it,
opening a new connection whenever the agent closes one. Prints Reserve's p50,
p99 and max over ``BENCH_SECONDS`` each: quiet, with 40 slow clients, and with
200 (more than the per-address cap, so most of them are refused at once).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from tests.agentproc import running_agent
from tests.support.slowloris import SlowClients, percentile, reserve_latencies

SECONDS = float(os.environ.get("BENCH_SECONDS", "12"))  # over two header deadlines


def _reserves(url: str) -> list[float]:
    """Reserve latencies for ``SECONDS``, sorted."""
    took: list[float] = []
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        took += reserve_latencies(url, "j-1", 50)
    return sorted(took)


def _figures(label: str, took: list[float]) -> None:
    ms = [t * 1000 for t in took]
    print(
        f"{label:>22}: Reserve p50 {percentile(took, 0.5) * 1000:6.1f} ms, "
        f"p99 {percentile(took, 0.99) * 1000:6.1f} ms, max {max(ms):6.1f} ms ({len(took)} calls)"
    )


def main() -> None:
    """Print the three rows."""
    with tempfile.TemporaryDirectory() as tmp, running_agent(Path(tmp), resources=["j-1"]) as agent:
        reserve_latencies(agent.url, "j-1", 20)  # warm up
        _figures("quiet", _reserves(agent.url))
        for count in (40, 200):
            slow = SlowClients(agent.port, "127.0.0.2", count, quick=2.5)
            slow.start()
            time.sleep(0.5)
            try:
                took = _reserves(agent.url)
            finally:
                slow.stop.set()
                slow.join(10)
            _figures(f"{count} slow clients", took)
            print(
                f"{'':>22}  slow connections refused at once {slow.refused}, cut after "
                f"the header deadline {slow.cut}, kept at most {slow.longest:.1f} s"
            )


if __name__ == "__main__":
    main()

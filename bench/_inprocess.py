"""The agent's own part of a JSON-RPC operation: dispatch, rule, store, sinks -- no HTTP.

``.venv/bin/python -m bench._inprocess [WITHOUT ...]`` builds the real core (SQLite
store with its writer process, registry, authority) with the daemon's sinks -- audit,
metrics, sessions, waitlist, event stream -- on uvloop, and has 32 coroutines call
``jsonrpc._dispatch`` as the JSON-RPC handler does: Reserve, Lock, Release, each
committed before it is answered. Prints operations per second and the event loop
thread's CPU per operation, three rounds of BENCH_SECONDS (3). WITHOUT leaves sinks
out (``audit``, ``metrics``, ``stream``): the difference is what each costs. A tool
for docs/benchmarks.md ("Where the time goes now"), not part of ``make bench``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from agent import audit
from agent.api import jsonrpc
from agent.api.access import Access
from agent.api.allow import Allowlist
from agent.api.app import make_app
from agent.api.stream import About, EventStream
from agent.api.tokens import Tokens
from agent.core import build_core
from agent.daemon import GC_YOUNG_THRESHOLD
from agent.meters import Meters
from agent.metrics.sink import MetricsSink
from agent.model import Description, Kind
from agent.sessions.journal import Journal
from agent.sessions.manager import Sessions
from agent.systemd import logs
from agent.waitlist import Waitlist
from bench._jsonrpc_load import JENKINS

CLIENTS = 32
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
SINKS = ("audit", "metrics", "stream")


async def _client(app: Any, rid: str, until: float, done: list[int]) -> None:
    key: object = None
    while time.perf_counter() < until:
        for method in ("Reserve", "Lock", "Release"):
            params: dict[str, object] = {"resource": rid, "clientInfo": JENKINS}
            if method == "Reserve":
                params["timeout"] = 30
            else:
                params["key"] = key
            answer = await jsonrpc._dispatch(app, f"ResourceMonitor.Resources.{method}", params, 1)
            result = answer["result"]
            if result["status"] != "OK":
                raise RuntimeError(f"{method} refused: {result['message']}")
            key = result["key"]
            done[0] += 1


async def run(without: set[str]) -> None:
    """Build the core and sinks as the daemon does (minus ``without``), then the rounds."""
    logs.setup("warning")
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    meters = Meters()
    sinks = [] if "audit" in without else [audit.audit]
    with tempfile.TemporaryDirectory() as tmp:
        async with build_core(Path(tmp), clock=time.time, sinks=sinks,
                              observe_commit=meters.commit_seconds.observe) as core:  # fmt: skip
            for i in range(CLIENTS):
                core.authority.describe(Description(f"bench-{i}", f"bench-{i}", Kind.STATIC))
            metrics = MetricsSink(meters, core.bus, core.snapshot, list, node="n", version="v")
            if "metrics" not in without:
                await metrics.start()
            sessions = Sessions(core.authority, core.bus, Journal(core.store), [],
                                adb_server=None, identity="bench")  # fmt: skip
            waitlist = Waitlist(core.registry, core.bus)
            await sessions.start()
            await waitlist.start()
            access = Access(Tokens(), Allowlist(["127.0.0.1"]))
            app = make_app(core.authority, "bench", sessions=sessions, waitlist=waitlist,
                           access=access, meters=meters)  # fmt: skip
            if "stream" not in without:
                core.bus.subscribe(EventStream(core.authority, About("n", "v", 0.0))._on_event)
            for _ in range(3):
                done = [0]
                cpu, began = time.thread_time(), time.perf_counter()
                until = began + SECONDS
                await asyncio.gather(
                    *(_client(app, f"bench-{i}", until, done) for i in range(CLIENTS))
                )
                cpu, seconds = time.thread_time() - cpu, time.perf_counter() - began
                print(f"without {', '.join(sorted(without)) or 'nothing'}: "
                      f"{done[0] / seconds:6.0f} ops/s, event loop thread "
                      f"{cpu / done[0] * 1e6:5.1f} µs/op", flush=True)  # fmt: skip
            await waitlist.stop()
            await sessions.stop()
            await metrics.stop()


if __name__ == "__main__":
    unknown = set(sys.argv[1:]) - set(SINKS)
    if unknown:
        sys.exit(f"usage: python -m bench._inprocess [{' '.join(SINKS)}] (not {sorted(unknown)})")
    # The audit lines go to stderr, as the daemon's do: send them to a file or /dev/null.
    uvloop.run(run(set(sys.argv[1:])))

"""Coordinator sync figures: registration latency, and what a storm of devices costs.

The agent's real core (``build_core``: store, registry, authority) and its
coordinator sync run in this process (``tests.support.rig``); the strict fake
Jenkins runs in a thread of the same process (``tests.fakes.jenkins``). A
"device add" is ``authority.describe()`` of a new resource -- what the udev
and adb sources call -- so the figures cover
everything after discovery: the commit, the event, the batch window, the HTTP
request and Jenkins' merge. Times are wall-clock from ``describe()`` until
the fake Jenkins has applied the update that carries the resource.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from agent.coordinator.status import SyncState
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.support.rig import NODE, Rig, description
from tests.support.waiting import until

SINGLE_ADDS = 200
STORM = 100


def _arrival(jenkins: FakeJenkins, rid: str) -> float | None:
    for rec in jenkins.recorded("update"):
        if rec.status == 200 and any(r["id"] == rid for r in rec.data[0]["children"]):
            return rec.at
    return None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _single_adds(directory: Path, window: float) -> list[float]:
    """Add devices one at a time; the latency of each registration in ms."""
    with JenkinsServer(FakeJenkins([NODE])) as server:
        config = {"url": server.url, "batch_window": window}
        async with Rig(directory, [config]) as rig:
            await until(lambda: rig.syncs[0].status().state is SyncState.IN_SYNC)
            latencies = []
            for i in range(SINGLE_ADDS):
                rid = f"single-{window}-{i:04d}"
                start = time.time()
                rig.authority.describe(description(rid, model="Pixel 7", serial=str(i)))
                at = await until(lambda rid=rid: _arrival(server.jenkins, rid), timeout=30)  # type: ignore[misc]
                latencies.append((at - start) * 1000)
            return latencies


async def _storm(directory: Path, window: float, gap: float = 0.0) -> tuple[int, int, float]:
    """Add STORM devices, ``gap`` s apart: (updates, all requests, ms until all registered)."""
    with JenkinsServer(FakeJenkins([NODE])) as server:
        config = {"url": server.url, "batch_window": window}
        async with Rig(directory, [config]) as rig:
            await until(lambda: rig.syncs[0].status().state is SyncState.IN_SYNC)
            server.jenkins.clear_requests()
            start = time.time()
            for i in range(STORM):
                rig.authority.describe(description(f"storm-{i:03d}", model="Pixel 7"))
                if gap:
                    await asyncio.sleep(gap)  # as udev reports a hub's phones one by one
            await until(lambda: len(server.jenkins.resources(NODE)) == STORM, timeout=60)
            elapsed = (time.time() - start) * 1000
            await until(lambda: rig.syncs[0].status().pending == 0)
            updates = len(server.jenkins.recorded("update"))
            return updates, len(server.jenkins.recorded()), elapsed


async def _lock_storm(directory: Path) -> tuple[int, float]:
    """Lock STORM registered resources at once: (requests, ms until Jenkins has all)."""
    from agent.model import Holder

    with JenkinsServer(FakeJenkins([NODE])) as server:
        async with Rig(directory, [{"url": server.url}]) as rig:
            for i in range(STORM):
                rig.authority.describe(description(f"held-{i:03d}"))
            await until(lambda: len(server.jenkins.resources(NODE)) == STORM)
            await until(lambda: rig.syncs[0].status().pending == 0)
            server.jenkins.clear_requests()
            start = time.time()
            holder = Holder("http://jenkins.example:8080/", "job/x/1/")
            await asyncio.gather(
                *(rig.authority.lock(f"held-{i:03d}", None, holder) for i in range(STORM))
            )
            await until(
                lambda: all(r["locked"] for r in server.jenkins.resources(NODE).values()),
                timeout=60,
            )
            return len(server.jenkins.recorded()), (time.time() - start) * 1000


async def _run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for window in (0.05, 0.0):
            lat = await _single_adds(root / f"single-{window}", window)
            print(
                f"add -> registered at Jenkins, one device at a time (n={SINGLE_ADDS}, "
                f"batch_window={window:g} s): p50 {statistics.median(lat):.1f} ms, "
                f"p99 {_pct(lat, 0.99):.1f} ms, max {max(lat):.1f} ms"
            )
        for gap in (0.0, 0.002):
            for window in (0.05, 0.0):
                updates, requests, ms = await _storm(root / f"storm-{window}-{gap}", window, gap)
                print(
                    f"storm of {STORM} new devices {gap * 1000:g} ms apart "
                    f"(batch_window={window:g} s): {updates} metadata update(s), {requests} "
                    f"request(s) in all, all registered after {ms:.0f} ms"
                )
        requests, ms = await _lock_storm(root / "locks")
        print(
            f"storm of {STORM} locks (one httpcli request each, no batch API): "
            f"{requests} requests, all locked at Jenkins after {ms:.0f} ms"
        )


def main() -> None:
    """Print the figures."""
    asyncio.run(_run())


if __name__ == "__main__":
    main()

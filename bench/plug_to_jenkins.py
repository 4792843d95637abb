"""From a USB plug to the device's registration at Jenkins, end to end.

The real agent process follows a umockdev testbed (real libudev, real
uevents) and registers what it finds with the strict test Jenkins, which runs
in this process and stamps each request as it answers it.

- latency: a phone is plugged in (umockdev's ``add``); the clock stops at the
  first ``metadata-httpcli/update`` that carries its id. Then it is unplugged
  and, after a quiet spell, the next phone (a new serial) goes into the same
  port. The coordinator keeps its default 0.05 s batch window: a change after a
  quiet spell goes out at once, a burst at most once per window.
- storm: 100 phones behind 10 hubs are plugged back to back; counted are the
  requests Jenkins receives until all 100 are registered, and the time.

Run: ``umockdev-wrapper .venv/bin/python -m bench plug_to_jenkins``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer, Recorded
from tests.fakes.umockdev import Testbed, hub, phone, umockdev_active
from tests.support.waiting import wait_for

EVENTS = int(os.environ.get("BENCH_PLUG_EVENTS", "200"))
QUIET = 0.1  # seconds between one phone's unplug and the next one's plug
STORM = 100
NODE = "bench-node"


def _ids(request: Recorded) -> set[str]:
    """Resource ids in one metadata update's document."""
    found: set[str] = set()

    def walk(values: list[dict[str, Any]]) -> None:
        for value in values:
            if value.get("metadata-type") == "external-resource":
                found.add(value["id"])
            walk(value.get("children", []))

    data = request.data
    walk(data if isinstance(data, list) else [data])
    return found


def _registered_at(jenkins: FakeJenkins, rid: str) -> float | None:
    for request in jenkins.recorded("update"):
        if request.status == 200 and rid in _ids(request):
            return request.at
    return None


def _wait(predicate: Callable[[], Any]) -> Any:
    return wait_for(predicate, timeout=15.0, interval=0.0005, what="Jenkins to register it")


def _agent(directory: Path, testbed: Testbed, server: JenkinsServer) -> AgentProcess:
    agent = AgentProcess(
        directory,
        udev=True,
        adb=False,
        env=testbed.env,
        config={"coordinator": [{"url": server.url, "node": NODE}]},
        log_level="warning",
    )
    return agent.start()


def latency(directory: Path) -> list[float]:
    """Seconds from umockdev's add to the registration answered by Jenkins."""
    with JenkinsServer(FakeJenkins([NODE])) as server, Testbed() as testbed:
        root = testbed.controller()
        agent = _agent(directory, testbed, server)
        try:
            samples = []
            for i in range(EVENTS):
                serial = f"REG{i:05d}"
                start = time.time()
                path = testbed.plug(root, 1, phone(serial))
                samples.append(_wait(partial(_registered_at, server.jenkins, serial)) - start)
                testbed.unplug(path)
                # One phone at a time, as a person plugs them: the next comes after a quiet
                # spell (longer than the batch window), not within the unplug's burst.
                time.sleep(QUIET)
            return samples
        finally:
            agent.stop()


def storm(directory: Path) -> tuple[float, int, int]:
    """(seconds until all registered, update requests, all requests) for 100 phones."""
    with JenkinsServer(FakeJenkins([NODE])) as server, Testbed() as testbed:
        root = testbed.controller()
        agent = _agent(directory, testbed, server)
        try:
            hubs = [testbed.plug(root, port, hub()) for port in range(1, 11)]
            _wait(testbed.drained)
            time.sleep(0.5)  # let start-up reconciliation finish before counting
            server.jenkins.clear_requests()
            start = time.time()
            for i in range(STORM):
                testbed.plug(hubs[i // 10], i % 10 + 1, phone(f"STORM{i:03d}"))
            _wait(lambda: len(server.jenkins.resources(NODE)) >= STORM)
            elapsed = time.time() - start
            return elapsed, len(server.jenkins.recorded("update")), len(server.jenkins.recorded())
        finally:
            agent.stop()


def main() -> None:
    """Print plug-to-registration percentiles and the storm's request count."""
    if not umockdev_active():
        print("plug_to_jenkins: skipped (run under umockdev-wrapper)")
        return
    os.environ.setdefault("TMPDIR", "/dev/shm")
    with tempfile.TemporaryDirectory() as work:
        ms = sorted(s * 1000 for s in latency(Path(work) / "latency"))
        p99 = ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)]
        print(
            f"umockdev add -> registered at Jenkins ({len(ms)} events, batch window 0.05 s, "
            f"TMPDIR={os.environ['TMPDIR']}): p50 {statistics.median(ms):.1f} ms, "
            f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
        )
        elapsed, updates, requests = storm(Path(work) / "storm")
        print(
            f"storm of {STORM} phones plugged back to back: all registered at Jenkins after "
            f"{elapsed * 1000:.0f} ms, {updates} metadata updates, {requests} requests in all"
        )

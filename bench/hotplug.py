"""Hotplug latency and a 100-device storm, against the real agent under umockdev.

Run: ``umockdev-wrapper .venv/bin/python -m bench hotplug``. umockdev writes
a fake sysfs tree per device, so the testbed goes on a tmpfs (``TMPDIR`` is
set to /dev/shm unless already set; the figure printed says which).

- latency: a phone is plugged in (umockdev's ``add``) and the clock stops
  when ``GET /api/resources/<serial>`` lists it present; then it is unplugged
  and the next one (a new serial) is plugged into the same port. The per-id
  endpoint reads the same registry as ``GET /api/resources`` and keeps the
  answer small as resources pile up.
- storm: 10 hubs are plugged, then 100 phones behind them back to back; the
  clock stops when the agent counts 100 resources (``GET /api/health``, polled
  every ms), and ``GET /api/resources`` then lists all 100 present. CPU time
  is the agent's utime+stime over the storm (/proc/<pid>/stat), polls
  included. The sender alone (umockdev writing 100 sysfs trees) is timed too.

umockdev's uevent socket queues at most 10 datagrams and aborts the sender
on an 11th, so the testbed sends in bursts of 8 and waits for the agent to
drain its queue in between (tests/fakes/umockdev.py): the storm is as fast as
the agent reads, and the number of such waits is printed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench._procstat import cpu_seconds
from tests.agentproc import AgentProcess, http_request
from tests.fakes.umockdev import Testbed, hub, phone, umockdev_active
from tests.support.waiting import wait_for

EVENTS = int(os.environ.get("BENCH_HOTPLUG_EVENTS", "300"))
STORM = 100
STORM_RUNS = 3


def _agent(directory: Path, testbed: Testbed) -> AgentProcess:
    agent = AgentProcess(directory, udev=True, adb=False, env=testbed.env, log_level="warning")
    return agent.start()


def _present(agent: AgentProcess, rid: str, want: bool = True) -> bool:
    resp = http_request(agent.url, "GET", f"/api/resources/{rid}")
    return (resp.status == 200 and bool(resp.json()["present"])) == want


def _wait(predicate: Callable[[], bool], interval: float = 0.0002) -> None:
    wait_for(predicate, interval=interval, what="the agent to list the device")


def latency(directory: Path) -> list[float]:
    """Seconds from umockdev's add to the resource listed, one per event."""
    with Testbed() as testbed:
        root = testbed.controller()
        agent = _agent(directory, testbed)
        try:
            samples = []
            for i in range(EVENTS):
                serial = f"LAT{i:05d}"
                start = time.perf_counter()
                path = testbed.plug(root, 1, phone(serial))
                _wait(partial(_present, agent, serial))
                samples.append(time.perf_counter() - start)
                testbed.unplug(path)
                _wait(partial(_present, agent, serial, want=False))
            return samples
        finally:
            agent.stop()


def storm(directory: Path) -> tuple[float, float, float, int]:
    """(seconds until all sent, until all listed, agent CPU seconds, drain waits)."""
    with Testbed() as testbed:
        root = testbed.controller()
        agent = _agent(directory, testbed)
        try:
            hubs = [testbed.plug(root, port, hub()) for port in range(1, 11)]
            _wait(testbed.drained)
            waits_before = testbed.drain_waits
            cpu_before = cpu_seconds(agent.pid)
            start = time.perf_counter()
            for i in range(STORM):
                testbed.plug(hubs[i // 10], i % 10 + 1, phone(f"STORM{i:03d}"))
            sent = time.perf_counter() - start

            # /api/health's count is a cheap poll (the hubs are not resources);
            # polling /api/resources itself would cost the agent more than the storm.
            _wait(lambda: agent.get("/api/health")["resources"] >= STORM, interval=0.001)
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(agent.pid) - cpu_before
            listed = agent.get("/api/resources")["resources"]
            assert sum(1 for r in listed if r["present"]) == STORM, "not all phones listed"
            return sent, elapsed, cpu, testbed.drain_waits - waits_before
        finally:
            agent.stop()


def main() -> None:
    """Print hotplug latency percentiles and storm figures."""
    if not umockdev_active():
        print("hotplug: skipped (run under umockdev-wrapper)")
        return
    os.environ.setdefault("TMPDIR", "/dev/shm")
    tmp = os.environ["TMPDIR"]
    with tempfile.TemporaryDirectory() as work:
        samples = sorted(latency(Path(work) / "latency"))
        ms = [s * 1000 for s in samples]
        p99 = ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)]
        print(
            f"hotplug latency, umockdev add -> listed ({len(ms)} events, TMPDIR={tmp}): "
            f"p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms"
        )
        for run in range(STORM_RUNS):
            sent, elapsed, cpu, waits = storm(Path(work) / f"storm{run}")
            print(
                f"storm {run + 1}: {STORM} phones behind 10 hubs: all sent after "
                f"{sent * 1000:.0f} ms, all listed after {elapsed * 1000:.0f} ms, "
                f"agent CPU {cpu * 1000:.0f} ms; the sender waited for the agent {waits} times"
            )

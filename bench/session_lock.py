"""What a session adds to a Lock answer: none, an empty step list, the built-in phone steps.

A real agent follows a fake phone through the real adb server. Jenkins' client
(tests.fakes.jsonrpc4j) reserves, locks and releases it CYCLES times; each Lock
answer is timed from request to answer. Between cycles the bench waits for the
phone to be free again (teardown done). Three configurations in one run:

- no session (the reference: what a Lock costs today);
- a ``[[session]]`` with no steps;
- the built-in steps boot-completed, battery and unlock-screen.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.waiting import wait_for

CYCLES = int(os.environ.get("BENCH_CYCLES", "40"))
BUILT_IN: list[dict[str, Any]] = [
    {"step": "boot-completed", "timeout": 30},
    {"step": "battery", "min": 30},
    {"step": "unlock-screen"},
]
CONFIGS: dict[str, list[dict[str, Any]] | None] = {
    "no session": None,
    "empty step list": [],
    "boot-completed + battery + unlock-screen": BUILT_IN,
}


def _lock_times(agent: AgentProcess, serial: str) -> list[float]:
    jenkins = JsonRpc4jClient(agent.url)
    times = []
    for _ in range(CYCLES):
        wait_for(
            lambda: agent.get(f"/api/resources/{serial}")["state"] == "free",
            timeout=30,
            what="the phone to be free",
        )
        reserved = jenkins.reserve(serial, 30, "job/bench/")
        began = time.perf_counter()
        locked = jenkins.lock(serial, reserved.key, "job/bench/1/")
        times.append(time.perf_counter() - began)
        assert locked.ok, locked.message
        jenkins.release(serial, locked.key or reserved.key, "job/bench/1/")
    return times


def _run(
    root: Path, adb: AdbServer, phone: FakeAdbd, steps: list[dict[str, Any]] | None
) -> list[float]:
    config: dict[str, Any] = {"adb": {"server": adb.address, "allow_remote": True}}
    if steps is not None:
        config["session"] = [{"kind": "android", "provision": steps}]
    with AgentProcess(root, adb=True, config=config) as agent:
        wait_for(
            lambda: agent.get(f"/api/resources/{phone.serial}")["state"] == "free",
            timeout=30,
            what="the agent to see the phone",
        )
        return _lock_times(agent, phone.serial)


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if q < 100 else max(values) * 1000


def main() -> None:
    """Print the Lock answer time per configuration, and what a session adds."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        AdbServer(Path(tmp) / "adb") as adb,
        FakeAdbd() as phone,
    ):
        adb.connect(phone.serial)
        results = {
            name: _run(Path(tmp) / f"agent-{i}", adb, phone, steps)
            for i, (name, steps) in enumerate(CONFIGS.items())
        }
        adb.disconnect(phone.serial)
    base = statistics.median(results["no session"]) * 1000
    print(f"Lock answer time, {CYCLES} cycles each (JSON-RPC, fake phone over the real adb)")
    print(f"{'configuration':44} {'p50 ms':>8} {'p90 ms':>8} {'added p50 ms':>13}")
    for name, times in results.items():
        p50 = statistics.median(times) * 1000
        print(f"{name:44} {p50:8.1f} {_ms(times, 90):8.1f} {p50 - base:13.1f}")

"""Coordinator outages: what coming back costs, and what a slow Jenkins costs a lock.

``umockdev-wrapper .venv/bin/python -m bench outage`` (the lab's phones are
umockdev devices). The real agent process watches a umockdev testbed and keeps
one strict fake Jenkins in step (tests/support/outage.py, the scenario
tests/integration/test_fault_coordinator.py checks): Jenkins refuses
connections, then answers 500s, then hangs, STEPS lab changes in each (phones
plugged, unplugged and back; holds taken and released over JSON-RPC and
REST; static resources disabled and enabled); then it comes back. Figures per
round: seconds from its return until it matched the agent for good, the
requests the agent sent meanwhile, the requests the hung Jenkins carried out
late.

Then the lock path beside a Jenkins that takes SLOW seconds per request:
reserve, lock and release over JSON-RPC, CALLS times each, p50/p99/max of
every answer -- and the same beside a Jenkins that answers at once.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.fakes.umockdev import Testbed
from tests.support.churn import OTHER_JENKINS, Churn
from tests.support.convergence import converged
from tests.support.coordinator import NODE, coordinator
from tests.support.outage import outage

ROUNDS = 5
STEPS = 30
STATICS = [f"board-{i}" for i in range(10)]
SLOW = 2.0
CALLS = 300


def _agent(directory: Path, server: JenkinsServer, testbed: Testbed | None) -> AgentProcess:
    return AgentProcess(
        directory,
        udev=testbed is not None,
        env=testbed.env if testbed is not None else {},
        resources=STATICS,
        log_level="warning",
        config={
            "agent": {"node": NODE, "grace_period": 1.0},
            "coordinator": [coordinator(server, timeout=10.0 if testbed is None else 1.0)],
        },
    )


def outages() -> None:
    """ROUNDS outages of every kind on one agent; print what each return cost."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        Testbed() as testbed,
        JenkinsServer(FakeJenkins([NODE])) as server,
        _agent(Path(tmp), server, testbed) as agent,
    ):
        churn = Churn(agent, testbed, testbed.controller(), STATICS)
        for _ in range(5):
            churn.plug_new()
        converged(agent, server, quiet=0)
        print(f"{'round':>5} {'changes':>8} {'converge s':>11} {'requests':>9} {'held':>5}")
        for n in range(ROUNDS):
            cost = outage(churn, server, STEPS)
            print(f"{n + 1:>5} {cost.changes:>8} {cost.seconds:>11.3f} "
                  f"{cost.requests:>9} {cost.held:>5}")  # fmt: skip


def lock_latency(delay: float) -> list[float]:
    """Every reserve, lock and release answer's time in ms beside a Jenkins ``delay`` s slow."""
    took: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, JenkinsServer(FakeJenkins([NODE])) as server:
        server.jenkins.outage.delay = delay
        with _agent(Path(tmp), server, None) as agent:
            rpc = JsonRpc4jClient(agent.url, jenkins=OTHER_JENKINS)
            for i in range(CALLS):
                rid = STATICS[i % len(STATICS)]
                began = time.perf_counter()
                key = rpc.reserve(rid, 60, "job/bench/").key
                middle = time.perf_counter()
                assert rpc.lock(rid, key, "job/bench/1/").ok
                locked = time.perf_counter()
                assert rpc.release(rid, key, "job/bench/1/").ok
                marks = (began, middle, locked, time.perf_counter())
                took += [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
    return took


def main() -> None:
    """Print the figures."""
    outages()
    for delay in (0.0, SLOW):
        took = sorted(lock_latency(delay))
        p99 = took[int(0.99 * (len(took) - 1))]
        p50 = statistics.median(took)
        print(f"Jenkins {delay:.0f} s a request: {len(took)} answers, "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {took[-1]:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()

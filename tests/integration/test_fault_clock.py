"""Clock steps: holds run out by the monotonic clock; answers tell the wall clock's time.

The agent runs under libfaketime (tests/support/faketime.py), whose wall clock
the test steps an hour ahead and back, as NTP or ``date -s`` would, while its
monotonic clocks go on undisturbed. A reservation of 3 s must neither end at
the step nor last an hour longer; the deadlines answers and pages show must
be the wall clock's; a restart under a stepped clock keeps what was left of
every hold. Then the crash-safety run with steps of minutes to hours under
load before every kill: a 600 s reservation that a step ended would be an
acknowledged hold lost.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.crashes import CrashRun, agent_config
from tests.support.faketime import FakeWallClock
from tests.support.scale import scaled
from tests.support.waiting import wait_for

HOUR = 3600
SHORT = 3  # seconds: the holds that must run out on time
SLACK = 1.5  # seconds: answers are whole seconds, and the machine is loaded


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def near(shown: float, expected: float) -> bool:
    return abs(shown - expected) < SLACK


def test_holds_follow_the_monotonic_clock_and_answers_the_wall_clock(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    clock = FakeWallClock(tmp_path)
    agent = agent_factory(resources=["short", "lease", "long", "probe"], env=clock.env())
    jenkins = JsonRpc4jClient(agent.url)
    began = time.monotonic()
    short = jenkins.reserve("short", SHORT, "job/a/")
    assert near(short.time / 1000, clock.now() + SHORT), short
    lease = agent.post("/api/resources/lease/lock", {"lease": SHORT, "holder": "b"})
    long = jenkins.reserve("long", 600, "job/c/")

    def left() -> float:
        return SHORT - (time.monotonic() - began)

    for step in (+HOUR, -2 * HOUR):  # an hour ahead, then an hour behind the real time
        clock.step(step)
        for rid in ("short", "lease"):
            shown = agent.get(f"/api/resources/{rid}")
            assert shown["state"] in ("reserved", "locked"), f"ended by a step: {shown}"
            hold = shown["holder"]
            assert near(when(hold["expires"]), clock.now() + left()), (step, hold, clock.now())
        # Answers are the wall clock's: the deadline, its ISO form and offset agree with it
        # (check_result holds isotime and timezone to time).
        probe = jenkins.reserve("probe", 60, f"job/probe{step}/")
        assert near(probe.time / 1000, clock.now() + 60), (step, probe)
        assert jenkins.release("probe", probe.key, f"job/probe{step}/").ok
    assert left() > 0.5, "the machine is too slow for this test's 3 s holds"
    # The 3 s pass in real time: both run out then, not an hour early or late.
    wait_for(
        lambda: {agent.get(f"/api/resources/{r}")["state"] for r in ("short", "lease")} == {"free"},
        timeout=SHORT + 10,
        what="the short holds to run out",
    )
    assert left() <= 0.1
    assert jenkins.lock("short", short.key, "job/a/1/").code == Code.EXPIRED
    lease_key = lease.json()["hold"]["key"]
    renew = agent.post("/api/resources/lease/renew", {"key": lease_key})
    assert renew.json()["error"]["code"] == Code.EXPIRED
    [entry] = agent.get("/api/resources/short/history")["history"]
    assert entry["end_reason"] == "reservation expired"
    assert near(when(entry["ended_at"]), clock.now() + left()), entry  # wall-clock time

    # Restarted (killed) under a clock two hours ahead: the long one keeps what it had left.
    clock.step(+3 * HOUR)
    agent.kill()
    agent.start()
    hold = agent.get("/api/resources/long")["holder"]
    assert hold is not None and hold["kind"] == "reserved", hold
    remaining = 600 - (time.monotonic() - began)
    assert near(when(hold["expires"]), clock.now() + remaining), (hold, clock.now())
    assert jenkins.lock("long", long.key, "job/c/1/").ok


@pytest.mark.timeout(scaled(300))
def test_no_acknowledged_hold_is_lost_to_clock_steps(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    clock = FakeWallClock(tmp_path)
    agent = agent_factory(**agent_config(), env=clock.env())

    def steps_then_kill(agent: AgentProcess) -> None:
        """Under load, a step of minutes to hours; load goes on; another; then SIGKILL."""
        for _ in range(2):
            clock.step(rng.choice((-1, 1)) * rng.randrange(60, 3 * HOUR))
            time.sleep(0.3)
        agent.kill()

    run = CrashRun(agent, seed=seed, fault=steps_then_kill, deadlines=False)
    for i in range(scaled(5)):
        run.round(("any", "provisioning")[i % 2])
    report = run.finish()
    print(f"\nclock steps (FAULTS_SEED={seed}): {report.summary()}")
    assert not report.violations, (
        f"FAULTS_SEED={seed}: {len(report.violations)} violations:\n"
        + "\n".join(report.violations[:30])
    )
    assert report.released >= 1, report.summary()

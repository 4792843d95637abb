"""Crash safety: SIGKILL at any moment under load, and nothing acknowledged is lost.

Twelve clients (half JSON-RPC as Jenkins' jsonrpc4j sends it, half REST)
reserve, lock, renew and release eight resources, two of them with a session
whose provisioning and teardown run a command. The agent is killed with
SIGKILL again and again -- at random moments, while a Lock waits on
provisioning, while a teardown runs -- and after each restart the checker
(tests/support/checker.py) holds its state and its log against the history of
answers. ``make faults`` (``FAULTS_SCALE=10``) runs ten times as many kills.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from tests.agentproc import AgentProcess
from tests.support.crashes import CrashRun, agent_config
from tests.support.scale import scaled

KILLS = 21
MOMENTS = ("any", "provisioning", "teardown", "answered")


@pytest.mark.timeout(scaled(300))  # about 40 s; a loaded machine takes twice that or more
def test_acknowledged_operations_survive_sigkill_at_any_moment(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(2**32))
    agent = agent_factory(**agent_config())
    run = CrashRun(agent, seed=seed)
    for i in range(scaled(KILLS)):
        run.round(MOMENTS[i % len(MOMENTS)])
    report = run.finish()
    print(f"\ncrash safety (FAULTS_SEED={seed}): {report.summary()}")
    assert not report.violations, (
        f"FAULTS_SEED={seed}: {len(report.violations)} violations:\n"
        + "\n".join(report.violations[:30])
    )
    # The run proves little unless the kills hit what they are meant to hit.
    assert report.kills >= 20
    assert report.group >= 3, report.summary()
    assert report.provisioning >= 1, report.summary()
    assert report.teardown >= 1, report.summary()
    assert report.unknown >= 3 and report.ok >= 200, report.summary()
    assert report.released >= 1, report.summary()  # acknowledged keys used after restarts

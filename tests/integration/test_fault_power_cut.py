"""Power cuts: the state directory on a disk that loses everything not yet fsynced.

The crash-safety run (tests/support/crashes.py) with the state on a
loop-mounted ext4 file system, and each fault a power cut: under load, the
file system is shut down without flushing its journal (EXT4_IOC_SHUTDOWN,
NOLOGFLUSH: what was not fsynced is gone), the agent is killed, and the file
system is mounted again before the agent starts. The checker then holds the
agent to every answer it gave: "committed before answered" must hold against
the disk, not only against the death of the process.

The shutdown ioctl takes a few milliseconds, and an fsync that returns while
it runs may be lost; a real power cut lets no answer out after it. So a yes
that arrives once the cut has begun is counted as of unknown outcome
(``History.doubt_from``); everything answered before it is held to account.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess
from tests.support.crashes import CrashRun, agent_config
from tests.support.disks import LoopExt4
from tests.support.history import DOUBTED
from tests.support.scale import scaled

CUTS = 6


@pytest.mark.timeout(scaled(300))  # about 20 s
def test_acknowledged_operations_survive_power_cuts(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(2**32))
    with LoopExt4(tmp_path) as disk:
        _cut_loses_what_was_not_synced(disk)
        config = agent_config()
        config["config"]["agent"] = {"state_dir": str(disk.mountpoint / "state")}
        agent = agent_factory(**config)

        def power_cut(agent: AgentProcess) -> None:
            run.history.doubt_from = time.monotonic()
            disk.cut()
            agent.kill()
            disk.remount()

        def restart(agent: AgentProcess) -> None:
            run.history.doubt_from = None  # the clients are stopped: nothing is in flight
            agent.start()

        run = CrashRun(agent, seed=seed, fault=power_cut, restart=restart)
        for i in range(scaled(CUTS)):
            run.round(("any", "provisioning", "answered")[i % 3])
        report = run.finish()
        agent.stop()
    doubted = sum(op.message == DOUBTED for op in run.history.ops)
    print(f"\npower cut (FAULTS_SEED={seed}): {report.summary()}; {doubted} yes in doubt")
    assert not report.violations, (
        f"FAULTS_SEED={seed}: {len(report.violations)} violations:\n"
        + "\n".join(report.violations[:30])
    )
    assert disk.cuts == report.kills >= CUTS + 1
    assert report.in_flight >= CUTS // 2 and report.released >= 1, report.summary()


def _cut_loses_what_was_not_synced(disk: LoopExt4) -> None:
    """The fault is real here: a cut keeps what was fsynced and loses what was not."""
    synced, unsynced = disk.mountpoint / "synced", disk.mountpoint / "unsynced"
    with synced.open("wb") as f:
        f.write(b"kept")
        f.flush()
        os.fsync(f.fileno())
    unsynced.write_bytes(b"lost")
    disk.cut()
    disk.remount()
    assert synced.read_bytes() == b"kept"
    assert not unsynced.exists() or unsynced.read_bytes() != b"lost"
    disk.cuts = 0

"""Disk trouble: a full or read-only state directory refuses changes; the agent carries on.

The state directory is on a small tmpfs filled to the last byte (a real
ENOSPC), or the agent's file writes are answered EROFS by the kernel (strace's
fault injection: see tests/support/disks.py for why a real read-only remount
cannot be had with the database open). Changes are then refused -- JSON-RPC a
NO with code 15, REST a 503 with code 15, both naming the directory and the
reason -- reads keep working, health and doctor say what is wrong, and once
the disk takes writes again the same calls succeed without a restart, with
nothing acknowledged lost and nothing refused half-done (the crash-safety
checker, under load, around each spell of trouble).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from agent.core import STATE_FILE
from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.crashes import CrashRun, agent_config
from tests.support.disks import SmallTmpfs, refused_writes
from tests.support.scale import scaled
from tests.support.waiting import wait_for

SPELLS = 4  # spells of trouble under load: full, read-only, full, read-only


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[SmallTmpfs]:
    with SmallTmpfs(tmp_path / "fs", "8m") as fs:
        yield fs


def on(fs: SmallTmpfs, resources: Sequence[Any], config: Mapping[str, Any] | None = None) -> Any:
    """AgentProcess keywords for an agent whose state directory is on ``fs``."""
    state = {"agent": {"state_dir": str(fs.mountpoint / "state")}}
    return {"resources": resources, "config": {**(config or {}), **state}}


def doctor_says(agent: AgentProcess) -> dict[str, object]:
    """What ``resource-agent doctor`` says of the state directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "doctor", "--config", str(agent.config_path),
         "--json"],
        check=False, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    checks = json.loads(done.stdout)["checks"]
    return next(c for c in checks if c["name"] == "state directory")


def refused_for_the_disk(agent: AgentProcess, state_dir: Path, reason: str, held: str) -> None:
    """Every kind of change is refused with code 15, naming the directory and ``reason``."""
    rest = agent.post("/api/resources/r2/reserve", {"holder": "during"})
    assert rest.status == 503, rest
    error = rest.json()["error"]
    assert error["code"] == Code.NOT_SAVED
    assert str(state_dir) in error["message"] and reason in error["message"], error
    assert "nothing was changed" in error["message"]
    jenkins = JsonRpc4jClient(agent.url)  # HTTP 200 and the seven fields, or it fails
    answer = jenkins.reserve("r2", 60, "job/during/")
    assert (answer.status, answer.code) == ("NO", Code.NOT_SAVED), answer
    assert str(state_dir) in answer.message
    release = agent.post("/api/resources/r1/release", {"key": held})
    assert release.status == 503 and release.json()["error"]["code"] == Code.NOT_SAVED
    disable = agent.post("/api/resources/r2/disable", {"reason": "during"})
    assert disable.status == 503 and disable.json()["error"]["code"] == Code.NOT_SAVED
    # Reads keep working, and nothing changed.
    r1, r2 = agent.get("/api/resources/r1"), agent.get("/api/resources/r2")
    assert (r1["state"], r1["holder"]["holder"]["url"]) == ("locked", "before")
    assert (r2["state"], r2["enabled"]) == ("free", True)
    history = agent.get("/api/resources/r1/history")["history"]
    assert [h["holder"]["url"] for h in history] == ["before"]
    health = agent.get("/api/health")
    assert health["status"] == "degraded", health
    assert str(state_dir) in health["problems"][0] and reason in health["problems"][0]


def recovers(agent: AgentProcess, held: str) -> float:
    """Once the disk takes writes: health clears and the same calls succeed. Seconds it took."""
    began = time.monotonic()
    wait_for(lambda: agent.get("/api/health")["status"] == "ok", timeout=15, what="health ok")
    assert agent.post("/api/resources/r1/release", {"key": held}).status == 200
    took = time.monotonic() - began
    assert JsonRpc4jClient(agent.url).reserve("r2", 60, "job/after/").ok
    return took


def test_a_full_disk_refuses_changes_and_the_agent_carries_on(
    agent_factory: Callable[..., AgentProcess], tmpfs: SmallTmpfs
) -> None:
    agent = agent_factory(**on(tmpfs, resources=["r1", "r2"]))
    state_dir = tmpfs.mountpoint / "state"
    held = agent.post("/api/resources/r1/lock", {"holder": "before"}).json()["hold"]["key"]
    assert tmpfs.fill() > 0
    refused_for_the_disk(agent, state_dir, "its file system is full", held)
    check = doctor_says(agent)
    assert not check["ok"] and "No space left on device" in str(check["detail"]), check
    assert "free space" in str(check["fix"])
    tmpfs.drain()
    took = recovers(agent, held)
    print(f"\nfull disk: changes taken again {took:.2f} s after space was freed")
    _consistent_after_restart(agent, state_dir)


def test_refused_writes_refuse_changes_and_the_agent_carries_on(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    agent = agent_factory(resources=["r1", "r2"])
    held = agent.post("/api/resources/r1/lock", {"holder": "before"}).json()["hold"]["key"]
    with refused_writes(agent.pid):
        refused_for_the_disk(agent, agent.state_dir, "disk I/O error", held)
    took = recovers(agent, held)
    print(f"\nread-only: changes taken again {took:.2f} s after writes were allowed")
    _consistent_after_restart(agent, agent.state_dir)


@pytest.mark.timeout(scaled(300))
def test_no_acknowledged_change_is_lost_around_disk_trouble_under_load(
    agent_factory: Callable[..., AgentProcess], tmpfs: SmallTmpfs
) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(2**32))
    agent = agent_factory(**on(tmpfs, **agent_config()))
    spells = iter(range(10**6))

    def trouble(agent: AgentProcess) -> None:
        """A spell under load: full, or writes refused; then the disk takes writes again."""
        spell: AbstractContextManager[object] = (
            refused_writes(agent.pid) if next(spells) % 2 else _full(tmpfs)
        )
        with spell:
            time.sleep(0.5)

    run = CrashRun(agent, seed=seed, fault=trouble, restart=lambda agent: None)
    for i in range(scaled(SPELLS)):
        run.round(("any", "provisioning", "teardown")[i % 3])
    run.fault = lambda agent: _restart(agent, tmpfs.mountpoint / "state")
    report = run.finish()  # a restart at last: what is on disk is what was answered
    print(f"\ndisk trouble (FAULTS_SEED={seed}): {report.summary()}")
    assert not report.violations, (
        f"FAULTS_SEED={seed}: {len(report.violations)} violations:\n"
        + "\n".join(report.violations[:30])
    )
    refused = sum(op.code == Code.NOT_SAVED for op in run.history.ops)
    print(f"{refused} calls refused with code 15 (NOT_SAVED) in {SPELLS} spells")
    assert refused >= SPELLS and report.released >= 1, report.summary()
    assert "Traceback" not in agent.log(), agent.log_tail()


class _full(AbstractContextManager[object]):
    def __init__(self, fs: SmallTmpfs) -> None:
        self.fs = fs

    def __enter__(self) -> object:
        self.fs.fill()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fs.drain()


def _restart(agent: AgentProcess, state_dir: Path) -> None:
    """Stopped (SIGTERM), the database checked, started again."""
    agent.terminate()
    _sound(state_dir)
    agent.start()


def _sound(state_dir: Path) -> None:
    conn = sqlite3.connect(state_dir / STATE_FILE)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


def _consistent_after_restart(agent: AgentProcess, state_dir: Path) -> None:
    """Stopped and started again: what was answered is what is on disk, and the file is sound."""
    _restart(agent, state_dir)
    assert agent.get("/api/resources/r1")["state"] == "free"
    r2 = agent.get("/api/resources/r2")
    assert (r2["state"], r2["holder"]["holder"]["url"]) == ("reserved", "job/after/")
    assert "Traceback" not in agent.log(), agent.log_tail()

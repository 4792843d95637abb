"""A failed fsync: the change may be on disk all the same, and the answer says so.

When the sync of a commit fails, SQLite has already written the change with
its commit marker; whether it survives is not known (a power cut caught
between the kernel's journal commit and its error report keeps it). Such a
change is answered code 16 SAVE_UNCERTAIN, not 15 NOT_SAVED ("nothing was
changed"), and is not in effect while the agent runs: the next commit writes
over it. Only if the agent dies first can it come back -- shown here for
real: the writes reach the page cache, every sync fails (strace's fault
injection), the agent is SIGKILLed, and the change is in effect after the
restart. That is what the power-cut test (test_fault_power_cut.py) met.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.disks import SYNCS, refused_writes
from tests.support.waiting import wait_for


def test_a_failed_sync_is_answered_uncertain_and_the_next_commit_settles_it(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    agent = agent_factory(resources=["r1", "r2"])
    held = agent.post("/api/resources/r1/lock", {"holder": "before"}).json()["hold"]["key"]
    with refused_writes(agent.pid, SYNCS, "EIO"):
        rest = agent.post("/api/resources/r2/reserve", {"holder": "during"})
        assert rest.status == 503, rest
        error = rest.json()["error"]
        assert error["code"] == Code.SAVE_UNCERTAIN, error
        assert str(agent.state_dir) in error["message"], error
        assert "may or may not be in effect" in error["message"], error
        answer = JsonRpc4jClient(agent.url).reserve("r2", 60, "job/during/")
        assert (answer.status, answer.code) == ("NO", Code.SAVE_UNCERTAIN), answer
        release = agent.post("/api/resources/r1/release", {"key": held})
        assert release.status == 503 and release.json()["error"]["code"] == Code.SAVE_UNCERTAIN
        # Not in effect while the agent runs.
        assert agent.get("/api/resources/r2")["state"] == "free"
        assert agent.get("/api/resources/r1")["state"] == "locked"
        assert agent.get("/api/health")["status"] == "degraded"
    wait_for(lambda: agent.get("/api/health")["status"] == "ok", timeout=15, what="health ok")
    assert JsonRpc4jClient(agent.url).reserve("r2", 60, "job/after/").ok
    agent.terminate()
    agent.start()
    # What the disk has is what was answered OK, and nothing uncertain came back.
    r1, r2 = agent.get("/api/resources/r1"), agent.get("/api/resources/r2")
    assert (r1["state"], r1["holder"]["holder"]["url"]) == ("locked", "before")
    assert (r2["state"], r2["holder"]["holder"]["url"]) == ("reserved", "job/after/")
    history = agent.get("/api/resources/r2/history")["history"]
    assert [h["holder"]["url"] for h in history] == ["job/after/"]
    assert "Traceback" not in agent.log(), agent.log_tail()


def test_an_uncertain_change_is_in_effect_if_the_agent_dies_before_the_next_commit(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    """Why NOT_SAVED would be a lie here: the refused lock is on disk after the crash."""
    agent = agent_factory(resources=["r1"])
    with refused_writes(agent.pid, SYNCS, "EIO"):
        lock = agent.post("/api/resources/r1/lock", {"holder": "during"})
        assert lock.status == 503 and lock.json()["error"]["code"] == Code.SAVE_UNCERTAIN
        assert agent.get("/api/resources/r1")["state"] == "free"
        agent.kill()  # before the store's next write (a probe within 1 s) covers it
    agent.start()
    r1 = agent.get("/api/resources/r1")
    assert (r1["state"], r1["holder"]["holder"]["url"]) == ("locked", "during"), r1

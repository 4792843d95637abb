"""What the agent acknowledged survives restarts: expiries applied, holds and switches kept.

The crash-safety run under load, with SIGKILL at every kind of moment and a
checker, is tests/integration/test_fault_crash.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient


def test_expiry_while_down_is_applied_at_start(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    agent = agent_factory(resources=["short", "long"])
    jenkins = JsonRpc4jClient(agent.url)
    short_key = jenkins.reserve("short", 0.5, "job/a/").key
    long_key = jenkins.reserve("long", 600, "job/b/").key
    agent.kill()
    time.sleep(0.6)
    agent.start()
    assert agent.get("/api/resources/short")["state"] == "free"
    assert jenkins.lock("short", short_key, "job/a/1/").code == Code.EXPIRED
    [entry] = agent.get("/api/resources/short/history")["history"]
    assert entry["end_reason"] == "reservation expired" and entry["ended_at"] is not None
    assert jenkins.lock("long", long_key, "job/b/1/").ok


def test_holds_and_switches_survive_restarts(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory(resources=["locked", "disabled", "free"])
    jenkins = JsonRpc4jClient(agent.url)
    key = jenkins.reserve("locked", 600, "job/a/").key
    assert jenkins.lock("locked", key, "job/a/1/").ok
    assert agent.post("/api/resources/disabled/disable", {"reason": "on the shelf"}).status == 200
    for kill in (False, True):
        agent.restart(kill=kill)
        shown = agent.get("/api/resources/locked")
        assert (shown["state"], shown["holder"]["holder"]["url"]) == ("locked", "job/a/1/")
        disabled = agent.get("/api/resources/disabled")
        assert (disabled["state"], disabled["disabled_reason"]) == ("disabled", "on the shelf")
        assert agent.get("/api/resources/free")["state"] == "free"
    assert jenkins.release("locked", key, "job/a/1/").ok

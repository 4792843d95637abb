"""The store's writer is a process of the agent's (agent/store_writer.py): it dies with
the agent, and an agent whose writer dies answers what it must and starts another."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.procs import store_writers
from tests.support.waiting import wait_for


def writer_of(agent: AgentProcess) -> int:
    """The PID of the agent's store writer."""

    def found() -> int | None:
        return next(iter(store_writers(agent.pid)), None)

    return int(wait_for(found, what="the store's writer process"))


def test_the_writer_dies_with_its_agent(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory(resources=["p1"])
    jenkins = JsonRpc4jClient(agent.url)
    key = jenkins.reserve("p1", 600, "job/a/").key
    assert jenkins.lock("p1", key, "job/a/1/").ok
    writer = writer_of(agent)
    agent.kill()
    # PR_SET_PDEATHSIG: the kernel kills it with its agent, not at its next read.
    wait_for(lambda: not os.path.exists(f"/proc/{writer}"), timeout=5, what="the writer gone")
    agent.start()
    assert agent.get("/api/resources/p1")["state"] == "locked"
    assert writer_of(agent) != writer


def test_a_writer_that_dies_is_replaced(agent_factory: Callable[..., AgentProcess]) -> None:
    """What was acknowledged stays; changes go on being saved by a new writer."""
    agent = agent_factory(resources=["p1", "p2"])
    jenkins = JsonRpc4jClient(agent.url)
    key = jenkins.reserve("p1", 600, "job/a/").key
    assert jenkins.lock("p1", key, "job/a/1/").ok
    writer = writer_of(agent)
    os.kill(writer, signal.SIGKILL)
    wait_for(lambda: writer_of(agent) != writer, what="a new writer")
    assert "the store's writer process exited (code -9)" in agent.log_tail()
    reserved = jenkins.reserve("p2", 600, "job/b/")
    assert reserved.ok, reserved
    assert jenkins.lock("p2", reserved.key, "job/b/1/").ok
    agent.restart(kill=True)
    for rid, url in (("p1", "job/a/1/"), ("p2", "job/b/1/")):
        shown = agent.get(f"/api/resources/{rid}")
        assert (shown["state"], shown["holder"]["holder"]["url"]) == ("locked", url)
    assert jenkins.release("p1", key, "job/a/1/").ok

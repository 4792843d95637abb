"""What the agent acknowledged survives SIGKILL.

Several clients lock and release their own resource in a loop, through
JSON-RPC (reserve, lock, release, as Jenkins does) and REST (direct lock).
The agent is killed with SIGKILL in the middle, restarted on the same state
directory, and every acknowledged operation must still hold; the one call
each client had in flight may have landed or not, but nothing in between.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.waiting import wait_for

CLIENTS = 8
ACKED_BEFORE_KILL = 150


@dataclass
class Hold:
    """One hold a client took: its key and holder urls, and what was acknowledged.

    ``pending`` names the call that was cut short by the kill, if any.
    """

    urls: tuple[str, ...]  # reservation url, then the build's once locked
    key: str | None = None
    taken: bool = False  # reserve (JSON-RPC) or lock (REST) acknowledged
    locked: bool = False
    released: bool = False
    pending: str | None = None


@dataclass
class Client:
    """One client's resource and every hold it took, in order."""

    index: int
    resource: str
    holds: list[Hold] = field(default_factory=list)
    failure: str | None = None

    def acked(self) -> int:
        return sum(int(h.taken) + int(h.locked) + int(h.released) for h in self.holds)


def _rest(agent: AgentProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = agent.request("POST", path, body, timeout=5)
    if resp.status != 200:
        raise AssertionError(f"POST {path}: HTTP {resp.status} {resp.body!r}")
    return resp.json()  # type: ignore[no-any-return]


def _jenkins_hold(jenkins: JsonRpc4jClient, rid: str, hold: Hold) -> None:
    hold.pending = "reserve"
    result = jenkins.reserve(rid, 600, hold.urls[0])
    assert result.ok, result
    hold.key, hold.taken, hold.pending = result.key, True, "lock"
    assert jenkins.lock(rid, hold.key, hold.urls[1]).ok
    hold.locked, hold.pending = True, "release"
    assert jenkins.release(rid, hold.key, hold.urls[1]).ok
    hold.released, hold.pending = True, None


def _rest_hold(agent: AgentProcess, rid: str, hold: Hold) -> None:
    hold.pending = "lock"
    answer = _rest(agent, f"/api/resources/{rid}/lock", {"holder": hold.urls[0]})
    hold.key, hold.taken, hold.locked, hold.pending = answer["hold"]["key"], True, True, "release"
    _rest(agent, f"/api/resources/{rid}/release", {"key": hold.key})
    hold.released, hold.pending = True, None


def _work(agent: AgentProcess, client: Client, stop: threading.Event) -> None:
    """Take and release holds until the agent dies; any refusal is a failure."""
    jenkins = JsonRpc4jClient(agent.url, timeout=5)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            if n % 2:
                hold = Hold((f"job/c{client.index}/", f"job/c{client.index}/{n}/"))
                client.holds.append(hold)
                _jenkins_hold(jenkins, client.resource, hold)
            else:
                hold = Hold((f"client-{client.index}/{n}",))
                client.holds.append(hold)
                _rest_hold(agent, client.resource, hold)
    except (OSError, http.client.HTTPException):
        return  # the agent was killed under this call: it stays pending
    except AssertionError as exc:
        client.failure = str(exc)


def _check_history(agent: AgentProcess, client: Client) -> None:
    """Every acknowledged hold is in the history, ended exactly if its release was acked."""
    entries = agent.get(f"/api/resources/{client.resource}/history?limit=10000")["history"]
    # Reservation urls repeat across a client's Jenkins holds; a build url is unique.
    assert len(entries) in (
        sum(h.taken for h in client.holds),
        sum(h.taken or h.pending is not None for h in client.holds),
    ), f"{client.resource}: {len(entries)} history entries for {client.holds}"
    for hold, entry in zip(client.holds, reversed(entries), strict=False):
        url = entry["holder"]["url"]
        assert url in hold.urls, f"{client.resource}: history out of order: {entry} for {hold}"
        if hold.locked:
            assert entry["kind"] == "locked" and url == hold.urls[-1], entry
        if hold.released:
            assert entry["ended_at"] is not None and entry["end_reason"] == "released", entry
        elif hold.pending != "release":
            assert entry["ended_at"] is None, f"{client.resource}: {hold} ended: {entry}"
    assert sum(e["ended_at"] is None for e in entries) <= 1, entries


def _check_state(agent: AgentProcess, client: Client) -> None:
    """The resource is as the acknowledged calls left it; the key still works."""
    rid = client.resource
    shown = agent.get(f"/api/resources/{rid}")
    _check_history(agent, client)
    hold = client.holds[-1] if client.holds else None
    if shown["state"] == "free":
        # Free is right only if the last hold was released, or its taking was cut short.
        assert hold is None or hold.released or not hold.taken or hold.pending == "release", (
            f"{rid}: acknowledged hold lost: {hold}"
        )
        if hold is not None and hold.key is not None:
            again = agent.post(f"/api/resources/{rid}/release", {"key": hold.key})
            assert again.status == 409 and again.json()["error"]["code"] == Code.NOT_HELD
        return
    assert hold is not None and not hold.released, f"{rid}: acknowledged release undone: {shown}"
    assert shown["holder"]["holder"]["url"] in hold.urls, shown
    if hold.locked:
        assert shown["state"] == "locked", shown
    other = JsonRpc4jClient(agent.url).reserve(rid, 3, "job/intruder/")
    assert (other.status, other.code) == ("NO", Code.HELD), other
    wrong = agent.post(f"/api/resources/{rid}/release", {"key": "guessed"})
    assert wrong.status == 403 and wrong.json()["error"]["code"] == Code.WRONG_KEY
    if hold.key is None:  # taken, but the answer never arrived
        assert agent.post(f"/api/resources/{rid}/release", {"force": True}).status == 200
    else:
        assert agent.post(f"/api/resources/{rid}/release", {"key": hold.key}).status == 200
    assert agent.get(f"/api/resources/{rid}")["state"] == "free"


def test_acknowledged_operations_survive_sigkill(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    clients = [Client(i, f"dev-{i}") for i in range(CLIENTS)]
    agent = agent_factory(resources=[c.resource for c in clients])
    stop = threading.Event()
    threads = [threading.Thread(target=_work, args=(agent, c, stop)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: (
                sum(c.acked() for c in clients) >= ACKED_BEFORE_KILL
                or any(c.failure for c in clients)
            ),
            timeout=30,
            interval=0.005,
            what=f"{ACKED_BEFORE_KILL} acknowledged operations",
        )
        agent.kill()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    failures = [c.failure for c in clients if c.failure]
    assert not failures, failures
    # The kill must have cut calls short, else this test proves little.
    assert any(c.holds[-1].pending for c in clients), "no call was in flight at the kill"

    agent.start()
    for client in clients:
        _check_state(agent, client)
    assert "Traceback" not in agent.run_log(), agent.log_tail()


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

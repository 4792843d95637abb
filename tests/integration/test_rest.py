"""The REST API under /api/, against a real agent process.

Answers and error bodies (``{"error": {"code", "message"}}``) with fitting
statuses; keys appear only in the answer to whoever took the hold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, Response
from tests.support.waiting import wait_for

IDENTITY = "resource-agent://test-node"  # what AgentProcess configures


def post(agent: AgentProcess, rid: str, action: str, body: Any = None) -> Response:
    return agent.post(f"/api/resources/{quote(rid, safe='')}/{action}", body)


def ok(agent: AgentProcess, rid: str, action: str, body: Any = None) -> Any:
    resp = post(agent, rid, action, body)
    assert resp.status == 200, (action, resp.status, resp.body)
    return resp.json()


def refused(resp: Response, status: int, code: Code, *words: str) -> str:
    """The error body, with this status and code and a message naming ``words``."""
    assert resp.status == status, (resp.status, resp.body)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    for word in words:
        assert word in message, (word, message)
    return message


def state(agent: AgentProcess, rid: str) -> str:
    return str(agent.get(f"/api/resources/{rid}")["state"])


# ------------------------------------------------------------------ reading


def test_health_counts_resources_and_holds(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory(resources=["a", "b", "c"])
    assert agent.get("/api/health") == {
        "status": "ok",
        "resources": 3,
        "held": 0,
        "problems": [],
    }
    ok(agent, "b", "lock")
    assert agent.get("/api/health")["held"] == 1


def test_list_and_show(pool_agent: AgentProcess, rid: str) -> None:
    listed = pool_agent.get("/api/resources")["resources"]
    ids = [r["id"] for r in listed]
    assert ids == sorted(ids) and rid in ids
    shown = pool_agent.get(f"/api/resources/{rid}")
    assert shown == next(r for r in listed if r["id"] == rid)
    assert shown == {
        "id": rid,
        "name": rid,
        "kind": "static",
        "description": "",
        "state": "free",
        "enabled": True,
        "disabled_reason": "",
        "present": True,
        "gone": False,
        "health": None,
        "problem": None,
        "fault": None,
        "holder": None,
        "metadata": {},
    }


def test_unknown_resource_is_404(pool_agent: AgentProcess) -> None:
    refused(pool_agent.request("GET", "/api/resources/nope"), 404, Code.UNKNOWN_RESOURCE, "nope")
    for action in ("reserve", "lock", "release", "renew", "enable", "disable", "forget"):
        body = {"key": "k"} if action in ("release", "renew") else {}
        refused(post(pool_agent, "nope", action, body), 404, Code.UNKNOWN_RESOURCE, "nope")
    resp = pool_agent.request("GET", "/api/resources/nope/history")
    refused(resp, 404, Code.UNKNOWN_RESOURCE)


def test_ids_with_url_characters(agent_factory: Callable[..., AgentProcess]) -> None:
    rid = "rack1:slot@2+a.b-c"
    agent = agent_factory(resources=[{"id": rid, "name": "Slot 2", "metadata": {"model": "pixel"}}])
    shown = agent.get(f"/api/resources/{quote(rid, safe='')}")
    assert (shown["id"], shown["name"], shown["metadata"]) == (rid, "Slot 2", {"model": "pixel"})
    assert ok(agent, rid, "lock")["resource"]["id"] == rid


def test_keys_are_never_listed(pool_agent: AgentProcess, rid: str) -> None:
    key = ok(pool_agent, rid, "reserve", {"holder": "alice"})["hold"]["key"]
    ok(pool_agent, rid, "lock", {"key": key})
    for path in ("/api/resources", f"/api/resources/{rid}", f"/api/resources/{rid}/history"):
        assert key not in json.dumps(pool_agent.get(path)), path
    released = ok(pool_agent, rid, "release", {"key": key})
    assert "key" not in released["released"]


# -------------------------------------------------------------------- holds


def test_reserve_lock_release(pool_agent: AgentProcess, rid: str) -> None:
    before = time.time()
    answer = ok(pool_agent, rid, "reserve", {})
    hold = answer["hold"]
    assert hold["kind"] == "reserved" and hold["key"]
    # Default holder: this agent's identity, and who asked from where.
    assert hold["holder"] == {"id": IDENTITY, "url": "api@127.0.0.1"}
    expires = datetime.fromisoformat(hold["expires"]).timestamp()
    assert before + 299 <= expires <= time.time() + 301  # the 300 s default, to the second
    assert answer["resource"]["state"] == "reserved"
    assert answer["resource"]["holder"]["kind"] == "reserved"

    locked = ok(pool_agent, rid, "lock", {"key": hold["key"], "holder": "bob"})
    assert locked["hold"]["key"] == hold["key"]
    assert locked["hold"]["holder"]["url"] == "bob" and locked["hold"]["expires"] is None
    assert state(pool_agent, rid) == "locked"

    released = ok(pool_agent, rid, "release", {"key": hold["key"]})
    assert released["resource"]["state"] == "free" and released["released"]["kind"] == "locked"
    [entry] = pool_agent.get(f"/api/resources/{rid}/history")["history"]
    assert entry["holder"]["url"] == "bob" and entry["end_reason"] == "released"
    assert entry["reserved_at"] and entry["locked_at"] and entry["ended_at"]


def test_refusals_by_state(pool_agent: AgentProcess, rid: str) -> None:
    key = ok(pool_agent, rid, "lock", {"holder": "carol"})["hold"]["key"]
    refused(post(pool_agent, rid, "reserve", {}), 409, Code.HELD, "carol")
    refused(post(pool_agent, rid, "lock", {}), 409, Code.HELD)
    refused(post(pool_agent, rid, "lock", {"key": "guess"}), 403, Code.WRONG_KEY)
    refused(post(pool_agent, rid, "release", {"key": "guess"}), 403, Code.WRONG_KEY)
    refused(post(pool_agent, rid, "renew", {"key": "guess"}), 403, Code.WRONG_KEY)
    refused(post(pool_agent, rid, "renew", {"key": key}), 409, Code.NO_LEASE, "lease")
    ok(pool_agent, rid, "release", {"key": key})
    refused(post(pool_agent, rid, "release", {"key": key}), 409, Code.NOT_HELD)
    refused(post(pool_agent, rid, "lock", {"key": key}), 403, Code.WRONG_KEY)


def test_force_release(pool_agent: AgentProcess, rid: str) -> None:
    ok(pool_agent, rid, "lock", {"holder": "dave"})
    released = ok(pool_agent, rid, "release", {"force": True})
    assert released["released"]["holder"]["url"] == "dave"
    assert pool_agent.get(f"/api/resources/{rid}/history")["history"][0]["end_reason"] == "forced"
    refused(post(pool_agent, rid, "release", {}), 422, Code.INVALID_ARGUMENT, "key")


def test_lease_expires(pool_agent: AgentProcess, rid: str) -> None:
    key = ok(pool_agent, rid, "lock", {"lease": 0.3})["hold"]["key"]
    wait_for(lambda: state(pool_agent, rid) == "free", timeout=5, what="the lease to end")
    refused(post(pool_agent, rid, "release", {"key": key}), 409, Code.EXPIRED)
    entry = pool_agent.get(f"/api/resources/{rid}/history")["history"][0]
    assert entry["end_reason"] == "lease expired"


def test_renew(pool_agent: AgentProcess, rid: str) -> None:
    hold = ok(pool_agent, rid, "reserve", {"timeout": 5})["hold"]
    renewed = ok(pool_agent, rid, "renew", {"key": hold["key"], "lease": 600})["hold"]
    assert renewed["key"] == hold["key"] and renewed["expires"] > hold["expires"]
    locked = ok(pool_agent, rid, "lock", {"key": hold["key"], "lease": 60})["hold"]
    again = ok(pool_agent, rid, "renew", {"key": hold["key"]})["hold"]  # its own 60 s again
    assert again["expires"] >= locked["expires"]


def test_disable_and_enable(pool_agent: AgentProcess, rid: str) -> None:
    key = ok(pool_agent, rid, "lock")["hold"]["key"]
    disabled = ok(pool_agent, rid, "disable", {"reason": "battery swollen"})
    assert disabled["enabled"] is False and disabled["disabled_reason"] == "battery swollen"
    assert disabled["state"] == "locked"  # the existing hold stays
    ok(pool_agent, rid, "release", {"key": key})
    assert state(pool_agent, rid) == "disabled"
    refused(post(pool_agent, rid, "reserve"), 409, Code.DISABLED, "battery swollen")
    refused(post(pool_agent, rid, "lock"), 409, Code.DISABLED)
    enabled = ok(pool_agent, rid, "enable")
    # The reason stays, for whoever wonders why it was off, until a new one is given.
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["state"]) == (
        True,
        "battery swollen",
        "free",
    )
    ok(pool_agent, rid, "enable")  # enabling twice is fine
    assert ok(pool_agent, rid, "disable")["disabled_reason"] == "battery swollen"
    assert ok(pool_agent, rid, "disable", {"reason": "cracked"})["disabled_reason"] == "cracked"


def test_history_is_newest_first_and_limited(pool_agent: AgentProcess, rid: str) -> None:
    for who in ("first", "second", "third"):
        key = ok(pool_agent, rid, "lock", {"holder": who})["hold"]["key"]
        ok(pool_agent, rid, "release", {"key": key})
    history = pool_agent.get(f"/api/resources/{rid}/history")["history"]
    assert [e["holder"]["url"] for e in history] == ["third", "second", "first"]
    limited = pool_agent.get(f"/api/resources/{rid}/history?limit=2")["history"]
    assert [e["holder"]["url"] for e in limited] == ["third", "second"]


@pytest.mark.parametrize("limit", ["0", "10001", "abc", "-1", "1.5", "%C2%B2", ""])
def test_history_limit_must_be_a_count(pool_agent: AgentProcess, rid: str, limit: str) -> None:
    resp = pool_agent.request("GET", f"/api/resources/{rid}/history?limit={limit}")
    refused(resp, 422, Code.INVALID_ARGUMENT, "limit")


# ------------------------------------------------------------ bad requests


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("reserve", {"timeout": "60"}, "timeout"),
        ("reserve", {"timeout": 0}, "timeout"),
        ("reserve", {"timeout": 10**9}, "timeout"),
        ("reserve", {"timeout": True}, "timeout"),
        ("reserve", {"holder": 5}, "holder"),
        ("reserve", {"bogus": 1}, "bogus"),
        ("lock", {"lease": -1}, "lease"),
        ("lock", {"key": ["k"]}, "key"),
        ("release", {"force": "yes"}, "force"),
        ("renew", {}, "key"),
        ("renew", {"key": "k", "lease": None, "extra": 1}, "extra"),
        ("disable", {"reason": 3}, "reason"),
        ("enable", {"reason": "x"}, "reason"),
    ],
    ids=repr,
)
def test_wrong_fields_are_named(
    pool_agent: AgentProcess, rid: str, action: str, body: Any, field: str
) -> None:
    refused(post(pool_agent, rid, action, body), 422, Code.INVALID_ARGUMENT, field)


@pytest.mark.parametrize("body", [b"{", b"[]", b'"text"', b"\xff", b"NaN", b'{"timeout": NaN}'])
def test_malformed_bodies_are_400(pool_agent: AgentProcess, rid: str, body: bytes) -> None:
    refused(post(pool_agent, rid, "reserve", body), 400, Code.MALFORMED_REQUEST)
    assert state(pool_agent, rid) == "free"


def test_unknown_routes_and_methods(pool_agent: AgentProcess, rid: str) -> None:
    refused(pool_agent.request("GET", "/api/nothing"), 404, Code.NOT_FOUND, "/api/nothing")
    refused(post(pool_agent, rid, "steal"), 404, Code.NOT_FOUND)
    resp = pool_agent.request("GET", f"/api/resources/{rid}/reserve")
    refused(resp, 405, Code.NOT_FOUND, "GET")
    assert resp.headers["allow"] == "POST"  # which method would do (RFC 9110; schemathesis)
    resp = pool_agent.request("DELETE", f"/api/resources/{rid}")
    refused(resp, 405, Code.NOT_FOUND)
    assert set(resp.headers["allow"].split(",")) == {"GET", "HEAD"}

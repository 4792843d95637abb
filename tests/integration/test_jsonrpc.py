"""The ResourceMonitor JSON-RPC endpoint, driven the way Jenkins drives it.

A real agent process; the client is tests/fakes/jsonrpc4j.py, which fails on
anything jsonrpc4j and Jackson would fail on. Refusals must be ``status: NO``
results with the documented codes; JSON-RPC errors only for malformed requests.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import (
    LOCK,
    RELEASE,
    RESERVE,
    JsonRpc4jClient,
    JsonRpcError,
    Mode,
    check_envelope,
    check_result,
)
from tests.support.waiting import wait_for

TASK = "job/phone-tests/"
BUILD = "job/phone-tests/12/"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


@pytest.fixture
def jenkins(pool_agent: AgentProcess) -> JsonRpc4jClient:
    return JsonRpc4jClient(pool_agent.url)


def rpc(agent: AgentProcess, payload: Any, content_type: str = "application/json-rpc") -> Any:
    """POST a raw payload; HTTP 200 and the parsed body are required."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    resp = agent.request("POST", "/", body, headers={"Content-Type": content_type})
    assert resp.status == 200, (resp.status, resp.body)
    return resp.json()


def call(method: str, params: Any, id_: Any = "7") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}


def reserve_params(resource: str, timeout: float = 3, url: str = TASK) -> dict[str, Any]:
    return {
        "resource": resource,
        "timeout": timeout,
        "clientInfo": {"id": "http://jenkins.example:8080/", "url": url},
    }


def error_of(answer: Any, id_: Any = None) -> JsonRpcError:
    with pytest.raises(JsonRpcError) as info:
        check_envelope(id_, answer)
    return info.value


# ------------------------------------------------------------ the happy path


@pytest.mark.parametrize("mode", list(Mode))
def test_jenkins_reserve_lock_release(pool_agent: AgentProcess, rid: str, mode: Mode) -> None:
    jenkins = JsonRpc4jClient(pool_agent.url, mode)
    before = time.time()
    reserved = jenkins.reserve(rid, 3, TASK)
    after = time.time()
    assert reserved.ok and reserved.code == 0 and reserved.key
    # time is the reservation's deadline.
    assert int((before + 3) * 1000) - 1 <= reserved.time <= int((after + 3) * 1000) + 1
    shown = pool_agent.get(f"/api/resources/{rid}")
    assert shown["state"] == "reserved"
    assert shown["holder"]["holder"] == {"id": "http://jenkins.example:8080/", "url": TASK}

    locked = jenkins.lock(rid, reserved.key, BUILD)
    assert locked.ok and locked.key == reserved.key
    shown = pool_agent.get(f"/api/resources/{rid}")
    assert shown["state"] == "locked"
    assert shown["holder"]["holder"]["url"] == BUILD
    assert reserved.key not in json.dumps(pool_agent.get("/api/resources"))

    released = jenkins.release(rid, reserved.key, BUILD)
    assert jenkins.last_request is not None
    assert isinstance(jenkins.last_request["params"], list)  # Release is array-wrapped
    assert released.ok
    assert pool_agent.get(f"/api/resources/{rid}")["state"] == "free"
    [entry] = pool_agent.get(f"/api/resources/{rid}/history")["history"]
    assert entry["kind"] == "locked" and entry["holder"]["url"] == BUILD
    assert entry["end_reason"] == "released" and entry["ended_at"] is not None


def test_lock_is_held_past_the_reservation_timeout(
    jenkins: JsonRpc4jClient, pool_agent: AgentProcess, rid: str
) -> None:
    key = jenkins.reserve(rid, 0.3, TASK).key
    assert jenkins.lock(rid, key, BUILD).ok
    time.sleep(0.5)
    assert pool_agent.get(f"/api/resources/{rid}")["state"] == "locked"
    again = jenkins.lock(rid, key, BUILD)  # locking one's own lock again is fine
    assert again.ok and again.key == key
    assert jenkins.release(rid, key, BUILD).ok


def test_same_task_reserving_again_keeps_its_key(jenkins: JsonRpc4jClient, rid: str) -> None:
    first = jenkins.reserve(rid, 3, TASK)
    second = jenkins.reserve(rid, 30, TASK)
    assert second.ok and second.key == first.key and second.time > first.time


def test_build_start_reserves_again_then_locks(
    jenkins: JsonRpc4jClient, pool_agent: AgentProcess, rid: str
) -> None:
    # protocol.md, the sequence: "if the reservation is gone on the Jenkins side,
    # Reserve again; then Lock(key)" -- whether or not it is gone on the agent.
    first = jenkins.reserve(rid, 3, TASK)
    again = jenkins.reserve(rid, 3, TASK)  # still live here: same key, new deadline
    assert again.ok and again.key == first.key
    locked = jenkins.lock(rid, again.key, BUILD)
    assert locked.ok and locked.key == first.key
    assert jenkins.release(rid, locked.key, BUILD).ok

    short = jenkins.reserve(rid, 0.3, TASK)
    wait_for(
        lambda: pool_agent.get(f"/api/resources/{rid}")["state"] == "free",
        timeout=5,
        what="the reservation to expire",
    )
    fresh = jenkins.reserve(rid, 3, TASK)  # gone on both sides: a new key
    assert fresh.ok and fresh.key != short.key
    assert jenkins.lock(rid, fresh.key, BUILD).ok
    assert jenkins.release(rid, fresh.key, BUILD).ok


def test_timezone_and_isotime_follow_the_agents_zone(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    agent = agent_factory(resources=["tz-phone"], env={"TZ": "Asia/Kolkata"})
    result = JsonRpc4jClient(agent.url).reserve("tz-phone", 3, TASK)
    assert result.timezone == 19800
    assert result.isotime.endswith("+05:30")


# ---------------------------------------------------------------- refusals


def test_unknown_resource_is_refused(jenkins: JsonRpc4jClient) -> None:
    for result in (
        jenkins.reserve("no-such-phone", 3, TASK),
        jenkins.lock("no-such-phone", "k", BUILD),
        jenkins.release("no-such-phone", "k", BUILD),
    ):
        assert result.status == "NO" and result.code == Code.UNKNOWN_RESOURCE
        assert "no-such-phone" in result.message and result.key is None


def test_disabled_resource_is_refused(
    jenkins: JsonRpc4jClient, pool_agent: AgentProcess, rid: str
) -> None:
    assert (
        pool_agent.post(f"/api/resources/{rid}/disable", {"reason": "screen cracked"}).status == 200
    )
    result = jenkins.reserve(rid, 3, TASK)
    assert (result.status, result.code) == ("NO", Code.DISABLED)
    assert "screen cracked" in result.message
    assert pool_agent.post(f"/api/resources/{rid}/enable").status == 200
    assert jenkins.reserve(rid, 3, TASK).ok


def test_held_by_someone_else_is_refused(
    jenkins: JsonRpc4jClient, pool_agent: AgentProcess, rid: str
) -> None:
    mine = jenkins.reserve(rid, 3, TASK)
    theirs = jenkins.reserve(rid, 3, "job/other-job/")
    assert (theirs.status, theirs.code) == ("NO", Code.HELD)
    assert TASK in theirs.message
    # Same job path, other Jenkins: still someone else.
    other_jenkins = JsonRpc4jClient(pool_agent.url, jenkins="http://other-jenkins:8080/")
    assert other_jenkins.reserve(rid, 3, TASK).code == Code.HELD
    assert jenkins.lock(rid, mine.key, BUILD).ok
    assert jenkins.reserve(rid, 3, TASK).code == Code.HELD


def test_wrong_key_is_refused(jenkins: JsonRpc4jClient, rid: str) -> None:
    key = jenkins.reserve(rid, 3, TASK).key
    assert key is not None
    assert jenkins.lock(rid, key + "x", BUILD).code == Code.WRONG_KEY
    assert jenkins.lock(rid, key, BUILD).ok
    wrong = jenkins.release(rid, "not-the-key", BUILD)
    assert (wrong.status, wrong.code) == ("NO", Code.WRONG_KEY)
    assert jenkins.release(rid, key, BUILD).ok
    assert jenkins.release(rid, key, BUILD).code == Code.NOT_HELD


def test_expired_reservation_is_refused(
    jenkins: JsonRpc4jClient, pool_agent: AgentProcess, rid: str
) -> None:
    key = jenkins.reserve(rid, 0.3, TASK).key
    wait_for(
        lambda: pool_agent.get(f"/api/resources/{rid}")["state"] == "free",
        timeout=5,
        what="the reservation to expire",
    )
    late = jenkins.lock(rid, key, BUILD)
    assert (late.status, late.code) == ("NO", Code.EXPIRED)
    assert jenkins.release(rid, key, BUILD).code == Code.EXPIRED
    [entry] = pool_agent.get(f"/api/resources/{rid}/history")["history"]
    assert entry["end_reason"] == "reservation expired"
    assert jenkins.reserve(rid, 3, "job/next/").ok  # and it is free for the next one


@pytest.mark.parametrize("timeout", [0, -1, 10**9])
def test_unusable_timeout_is_refused(jenkins: JsonRpc4jClient, rid: str, timeout: int) -> None:
    result = jenkins.reserve(rid, timeout, TASK)
    assert (result.status, result.code) == ("NO", Code.INVALID_ARGUMENT)
    assert "timeout" in result.message


def test_resource_removed_from_the_config_is_unknown(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    agent = agent_factory(resources=["bench-phone", "kept"])
    jenkins = JsonRpc4jClient(agent.url)
    assert agent.terminate() == 0
    # The same state, but the config no longer declares bench-phone: it is retired.
    again = AgentProcess(agent.directory, resources=["kept"], port=agent.port)
    try:
        again.start()
        result = jenkins.reserve("bench-phone", 3, TASK)
        assert (result.status, result.code) == ("NO", Code.UNKNOWN_RESOURCE)
        assert jenkins.reserve("kept", 3, TASK).ok
    finally:
        again.stop()


# --------------------------------------------------------- JSON-RPC framing


@pytest.mark.parametrize("id_", ["183729", 183729, 0, -5, 1.5, 2**70, "", "ü-ид", None], ids=repr)
def test_id_is_echoed_unchanged(pool_agent: AgentProcess, id_: Any) -> None:
    answer = rpc(pool_agent, call(RESERVE, [reserve_params("no-such")], id_))
    result = check_result(check_envelope(id_, answer))
    assert result.code == Code.UNKNOWN_RESOURCE


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_any_content_type_is_accepted(pool_agent: AgentProcess, content_type: str) -> None:
    answer = rpc(pool_agent, call(RESERVE, reserve_params("no-such")), content_type)
    assert check_result(check_envelope("7", answer)).code == Code.UNKNOWN_RESOURCE


def test_batch(pool_agent: AgentProcess, rid: str) -> None:
    answer = rpc(
        pool_agent,
        [
            call(RESERVE, reserve_params(rid), "a"),
            call(LOCK, {"resource": rid, "key": "bad", "clientInfo": {"id": "j"}}, 2),
            {"jsonrpc": "2.0", "method": RESERVE, "params": reserve_params("no-such")},
            call("ResourceMonitor.Resources.Steal", {}, "c"),
            5,
        ],
    )
    assert isinstance(answer, list) and len(answer) == 4  # the notification gets none
    by_id = {json.dumps(a.get("id")): a for a in answer}
    assert check_result(check_envelope("a", by_id['"a"'])).ok
    assert check_result(check_envelope(2, by_id["2"])).code == Code.WRONG_KEY
    assert error_of(by_id['"c"'], "c").code == METHOD_NOT_FOUND
    assert error_of(by_id["null"]).code == INVALID_REQUEST


def test_notifications_are_done_but_not_answered(pool_agent: AgentProcess, rid: str) -> None:
    note = {"jsonrpc": "2.0", "method": RESERVE, "params": reserve_params(rid)}
    for payload in (note, [note, note]):
        resp = pool_agent.request("POST", "/", json.dumps(payload))
        assert resp.status == 204 and resp.body == b""
    assert pool_agent.get(f"/api/resources/{rid}")["state"] == "reserved"


def test_notifications_are_not_answered_even_with_errors(
    pool_agent: AgentProcess, rid: str
) -> None:
    unknown = {"jsonrpc": "2.0", "method": "ResourceMonitor.Resources.Steal", "params": {}}
    bad_params = {"jsonrpc": "2.0", "method": RESERVE, "params": {"resource": rid}}
    for payload in (unknown, bad_params):
        resp = pool_agent.request("POST", "/", json.dumps(payload))
        assert resp.status == 204 and resp.body == b"", resp.body
    answer = rpc(pool_agent, [unknown, call(RESERVE, reserve_params(rid), 9), bad_params])
    assert len(answer) == 1 and check_result(check_envelope(9, answer[0])).ok


def test_parse_error(pool_agent: AgentProcess) -> None:
    for body in (b'{"jsonrpc": "2.0", "method"', b"", b"\xff\xfe", b"NaN"):
        err = error_of(rpc(pool_agent, body))
        assert err.code == PARSE_ERROR, body


@pytest.mark.parametrize(
    "payload",
    [
        {"method": RESERVE, "params": {}, "id": 1},
        {"jsonrpc": "1.0", "method": RESERVE, "params": {}, "id": 1},
        {"jsonrpc": "2.0", "method": 42, "params": {}, "id": 1},
        {"jsonrpc": "2.0", "params": {}, "id": 1},
        "just a string",
        [],
    ],
    ids=repr,
)
def test_invalid_request(pool_agent: AgentProcess, payload: Any) -> None:
    answer = rpc(pool_agent, payload)
    id_ = payload.get("id") if isinstance(payload, dict) else None
    assert error_of(answer, id_).code == INVALID_REQUEST


@pytest.mark.parametrize("id_", [True, {"n": 1}, [1]], ids=repr)
def test_id_that_is_not_a_string_or_number(pool_agent: AgentProcess, id_: Any) -> None:
    assert error_of(rpc(pool_agent, call(RESERVE, {}, id_))).code == INVALID_REQUEST


def test_unknown_method(pool_agent: AgentProcess) -> None:
    err = error_of(rpc(pool_agent, call("ResourceMonitor.Resources.List", {})), "7")
    assert err.code == METHOD_NOT_FOUND
    assert "ResourceMonitor.Resources.List" in str(err.data)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"timeout": 3, "clientInfo": {"id": "j"}}, "resource"),
        ({"resource": "r", "timeout": "3", "clientInfo": {"id": "j"}}, "timeout"),
        ({"resource": "r", "timeout": 3}, "clientInfo"),
        ({"resource": 7, "timeout": 3, "clientInfo": {"id": "j"}}, "resource"),
        ("r", "params"),
        ([reserve_params("a"), reserve_params("b")], "params"),
        (None, "params"),
    ],
    ids=repr,
)
def test_invalid_params_name_the_field(pool_agent: AgentProcess, params: Any, names: str) -> None:
    err = error_of(rpc(pool_agent, call(RESERVE, params)), "7")
    assert err.code == INVALID_PARAMS
    assert names in str(err.data)


def test_release_without_key_is_invalid_params(pool_agent: AgentProcess) -> None:
    err = error_of(rpc(pool_agent, call(RELEASE, [{"resource": "r"}])), "7")
    assert err.code == INVALID_PARAMS and "key" in str(err.data)


def test_null_key_is_a_refusal(
    jenkins: JsonRpc4jClient, pool_agent: AgentProcess, rid: str
) -> None:
    assert jenkins.release(rid, None, BUILD).code == Code.NOT_HELD
    # Lock turns a reservation into a lock: without a key there is none to turn.
    free = jenkins.lock(rid, None, BUILD)
    assert (free.status, free.code) == ("NO", Code.WRONG_KEY) and "not reserved" in free.message
    assert pool_agent.get(f"/api/resources/{rid}")["state"] == "free"
    assert jenkins.lock("no-such-phone", None, BUILD).code == Code.UNKNOWN_RESOURCE
    key = jenkins.reserve(rid, 3, TASK).key
    assert jenkins.lock(rid, None, BUILD).code == Code.HELD
    assert jenkins.release(rid, None, BUILD).code == Code.HELD
    assert jenkins.lock(rid, key, BUILD).ok


def test_one_winner_among_concurrent_reservers(pool_agent: AgentProcess, rid: str) -> None:
    results: list[Any] = [None] * 16

    def reserve(i: int) -> None:
        results[i] = JsonRpc4jClient(pool_agent.url).reserve(rid, 30, f"job/j{i}/")

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(r.code for r in results) == [0] + [Code.HELD] * (len(results) - 1)
    [winner] = [i for i, r in enumerate(results) if r.ok]
    holder = pool_agent.get(f"/api/resources/{rid}")["holder"]["holder"]
    assert holder["url"] == f"job/j{winner}/"


def test_calls_on_one_kept_alive_connection(pool_agent: AgentProcess, rid: str) -> None:
    conn = http.client.HTTPConnection(pool_agent.host, pool_agent.port, timeout=10)
    headers = {"Content-Type": "application/json-rpc"}
    try:
        conn.request("POST", "/", json.dumps(call(RESERVE, reserve_params(rid), "1")), headers)
        resp = conn.getresponse()
        key = check_result(check_envelope("1", json.loads(resp.read()))).key
        lock = {"resource": rid, "key": key, "clientInfo": {"id": "j", "url": BUILD}}
        conn.request("POST", "/", json.dumps(call(LOCK, lock, "2")), headers)
        assert check_result(check_envelope("2", json.loads(conn.getresponse().read()))).ok
        conn.request("POST", "/", json.dumps(call(RELEASE, [lock], "3")), headers)
        assert check_result(check_envelope("3", json.loads(conn.getresponse().read()))).ok
    finally:
        conn.close()

"""Hostile and broken input: the agent answers clearly and keeps serving.

Also an orderly stop: SIGTERM finishes the requests in flight, then exits 0.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, Response
from tests.fakes.jsonrpc4j import JsonRpc4jClient, JsonRpcError, check_envelope, check_result
from tests.support.waiting import wait_for

RESERVE = "ResourceMonitor.Resources.Reserve"
LIMIT = 64 * 1024


@pytest.fixture(autouse=True)
def still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the shared agent, it still answers, and logged no crash."""
    yield
    if "pool_agent" in request.fixturenames:
        agent: AgentProcess = request.getfixturevalue("pool_agent")
        assert agent.running(), agent.log_tail()
        assert agent.get("/api/health")["status"] == "ok"
        assert "Traceback" not in agent.log(), agent.log_tail()


def rpc(agent: AgentProcess, body: bytes) -> Any:
    resp = agent.request("POST", "/", body, headers={"Content-Type": "application/json-rpc"})
    assert resp.status == 200, (resp.status, resp.body[:200])
    return resp.json()


def rpc_error(agent: AgentProcess, body: bytes, id_: Any = None) -> JsonRpcError:
    with pytest.raises(JsonRpcError) as info:
        check_envelope(id_, rpc(agent, body))
    return info.value


def reserve(rid: str, id_: Any = "1") -> dict[str, Any]:
    params = {"resource": rid, "timeout": 3, "clientInfo": {"id": "j", "url": "u"}}
    return {"jsonrpc": "2.0", "method": RESERVE, "params": params, "id": id_}


def assert_error(resp: Response, status: int, code: Code) -> str:
    assert resp.status == status, (resp.status, resp.body[:200])
    body = resp.json()
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


# ------------------------------------------------------------------- sizes


@pytest.mark.parametrize("path", ["/", "/api/resources/res-x/reserve"])
def test_body_over_64_kib_is_413(pool_agent: AgentProcess, path: str) -> None:
    body = json.dumps({"pad": "x" * LIMIT}).encode()
    message = assert_error(pool_agent.request("POST", path, body), 413, Code.TOO_LARGE)
    assert "64 KiB" in message


def test_chunked_body_over_64_kib_is_413(pool_agent: AgentProcess) -> None:
    chunk = b"x" * 8192
    with socket.create_connection((pool_agent.host, pool_agent.port), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json-rpc\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(10):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the agent may hang up once it has seen enough
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:100]


def test_compressed_body_counts_unpacked(pool_agent: AgentProcess, rid: str) -> None:
    bomb = gzip.compress(b'{"reason": "' + b"a" * 5_000_000 + b'"}')
    assert len(bomb) < LIMIT
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    resp = pool_agent.request("POST", f"/api/resources/{rid}/disable", bomb, headers=headers)
    assert_error(resp, 413, Code.TOO_LARGE)
    assert pool_agent.get(f"/api/resources/{rid}")["enabled"] is True


def test_body_just_under_the_limit_is_read(pool_agent: AgentProcess, rid: str) -> None:
    request = reserve(rid) | {"pad": ""}
    request["pad"] = "x" * (LIMIT - len(json.dumps(request)) - 100)
    assert check_result(check_envelope("1", rpc(pool_agent, json.dumps(request).encode()))).ok


# ----------------------------------------------------------- JSON-RPC input


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b"\xc3\x28",
        b"[" * 60_000,
        b'{"jsonrpc": "2.0", "id": 1e400}',
        b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b"}",
        b'{"jsonrpc": "2.0", "id": Infinity}',
        b'{"jsonrpc": "2.0"} trailing',
    ],
    ids=lambda b: repr(b[:30]),
)
def test_unparseable_json_rpc_is_a_parse_error(pool_agent: AgentProcess, body: bytes) -> None:
    assert rpc_error(pool_agent, body).code == -32700


@pytest.mark.parametrize(
    "id_",
    [10**4000, -(2**63), 2**64, 1e300, "x" * 50_000, "\u0000\u2028\ud7ff", 0.0],
    ids=lambda i: repr(i)[:20],
)
def test_odd_ids_are_echoed(pool_agent: AgentProcess, id_: Any) -> None:
    answer = rpc(pool_agent, json.dumps(reserve("no-such", id_)).encode())
    assert check_result(check_envelope(id_, answer)).code == Code.UNKNOWN_RESOURCE


def test_wrong_types_name_the_field(pool_agent: AgentProcess) -> None:
    request = reserve("r")
    request["params"]["clientInfo"] = {"id": 5}
    err = rpc_error(pool_agent, json.dumps(request).encode(), "1")
    assert err.code == -32602 and "clientInfo.id" in str(err.data)
    request["params"] = {"resource": "r", "timeout": [3], "clientInfo": {"id": "j"}}
    err = rpc_error(pool_agent, json.dumps(request).encode(), "1")
    assert err.code == -32602 and "timeout" in str(err.data)


def test_unknown_method(pool_agent: AgentProcess) -> None:
    request = reserve("r") | {"method": "system.exit"}
    err = rpc_error(pool_agent, json.dumps(request).encode(), "1")
    assert err.code == -32601 and "system.exit" in str(err.data)


def test_big_batch_of_junk(pool_agent: AgentProcess) -> None:
    junk: list[Any] = [1, None, [], {}, {"jsonrpc": "2.0"}, "x"] * 200
    answer = rpc(pool_agent, json.dumps(junk).encode())
    assert len(answer) == len(junk)
    assert all(a["error"]["code"] == -32600 and a["id"] is None for a in answer)


# ---------------------------------------------------------------- REST input


def test_rest_wrong_types_and_malformed(pool_agent: AgentProcess, rid: str) -> None:
    path = f"/api/resources/{rid}/lock"
    message = assert_error(pool_agent.post(path, {"lease": "1h"}), 422, Code.INVALID_ARGUMENT)
    assert "lease" in message
    assert_error(pool_agent.request("POST", path, b"{'a': 1}"), 400, Code.MALFORMED_REQUEST)
    assert_error(pool_agent.request("POST", path, b"[" * 60_000), 400, Code.MALFORMED_REQUEST)
    assert_error(pool_agent.request("POST", path, b'{"lease": 1e999}'), 400, Code.MALFORMED_REQUEST)
    long_id = "r" * 5000
    assert_error(pool_agent.request("GET", f"/api/resources/{long_id}"), 404, Code.UNKNOWN_RESOURCE)


def test_lone_surrogates_are_refused_and_nothing_wedges(pool_agent: AgentProcess, rid: str) -> None:
    # "\ud800" is valid JSON syntax but not Unicode: it once killed the store's writer.
    path = f"/api/resources/{rid}/lock"
    resp = pool_agent.request("POST", path, b'{"holder": "\\ud800"}', timeout=5)
    assert "surrogate" in assert_error(resp, 400, Code.MALFORMED_REQUEST)
    body = b'{"jsonrpc": "2.0", "method": "%s", "id": 1, "params": {"resource": "%s",' % (
        RESERVE.encode(),
        rid.encode(),
    )
    body += b' "timeout": 3, "clientInfo": {"id": "j", "url": "\\udfff"}}}'
    assert rpc_error(pool_agent, body).code == -32700
    # Odd but valid text is stored and shown as sent.
    answer = pool_agent.post(path, {"holder": "nul\u0000 and \U0001f4f1"})
    assert answer.status == 200, answer.body
    assert pool_agent.get(f"/api/resources/{rid}")["holder"]["holder"]["url"] == (
        "nul\u0000 and \U0001f4f1"
    )


# ------------------------------------------------------------ broken HTTP


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{",  # then hang up
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
    ],
    ids=["garbage", "bad length", "cut short", "tls"],
)
def test_broken_http_leaves_the_agent_serving(pool_agent: AgentProcess, raw: bytes) -> None:
    with socket.create_connection((pool_agent.host, pool_agent.port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        try:
            head = sock.recv(4096)
        except OSError:
            head = b""
    assert head == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", head), head[:200]


def test_clients_hanging_up_mid_body(pool_agent: AgentProcess) -> None:
    for i in range(8):
        path = b"/" if i % 2 else b"/api/resources/res-x/reserve"
        with socket.create_connection((pool_agent.host, pool_agent.port), timeout=5) as sock:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{" % path)
            if i < 4:
                time.sleep(0.05)  # half of them after the handler started reading
    # The autouse check: still serving, and no traceback in the log.


# ---------------------------------------------------------- orderly stop


def test_sigterm_finishes_requests_in_flight(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory(resources=["phone"])
    body = json.dumps(reserve("phone", "inflight")).encode()
    idle = socket.create_connection((agent.host, agent.port), timeout=10)  # keep-alive, idle
    # Hold the database's write lock, so the agent's commit -- and with it the
    # answer -- waits: the request is in flight for as long as the test says.
    db = sqlite3.connect(agent.state_dir / "state.db", isolation_level=None, timeout=10)
    db.execute("BEGIN EXCLUSIVE")
    try:
        with socket.create_connection((agent.host, agent.port), timeout=10) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json-rpc\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            time.sleep(0.2)  # let the agent read it and start the commit
            agent.signal(signal.SIGTERM)

            def refusing() -> bool:
                try:
                    socket.create_connection((agent.host, agent.port), timeout=1).close()
                except OSError:
                    return True
                return False

            wait_for(refusing, timeout=5, what="the listener to close")
            assert idle.recv(100) == b"", "an idle connection must be closed at once"
            db.execute("COMMIT")
            answer = sock.makefile("rb").read()
    finally:
        db.close()
        idle.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    payload = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    key = check_result(check_envelope("inflight", payload)).key
    assert agent.wait() == 0, agent.log_tail()
    # The answered reservation was on disk before the answer.
    agent.start()
    assert agent.get("/api/resources/phone")["state"] == "reserved"
    assert JsonRpc4jClient(agent.url).lock("phone", key, "job/x/1/").ok


def test_sigint_and_repeated_signals_stop_cleanly(
    agent_factory: Callable[..., AgentProcess],
) -> None:
    agent = agent_factory(resources=["phone"])
    agent.signal(signal.SIGINT)
    with contextlib.suppress(AssertionError):  # it may be gone already
        agent.signal(signal.SIGTERM)
    assert agent.wait() == 0, agent.log_tail()
    assert "Traceback" not in agent.run_log()

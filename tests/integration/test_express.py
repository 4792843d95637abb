"""The express lane (agent/api/express.py): Jenkins' calls without aiohttp, the rest with it.

Every connection starts in the lane. These tests speak raw HTTP/1.1 to the
real agent, so what the lane takes (plain ``POST /`` with a Content-Length)
and what it hands to aiohttp (everything else, from that request on) are
both seen on the wire: answered in order, held to the same deadlines, and
answered as aiohttp always answered them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, running_agent
from tests.fakes.jsonrpc4j import check_envelope, check_result
from tests.support.scrape import Scrape

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.0
JENKINS = {"id": "http://jenkins:8080/", "url": "job/x/1/"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    server = {"header_timeout": HEADER_TIMEOUT, "body_timeout": BODY_TIMEOUT}
    resources = [f"e-{i}" for i in range(8)]
    with running_agent(
        tmp_path_factory.mktemp("express"), resources=resources, config={"server": server}
    ) as running:
        yield running


def call(method: str, id_: Any, **params: Any) -> bytes:
    """A JSON-RPC call's body, as Jenkins sends it (a build of its own for each id)."""
    params.setdefault("clientInfo", {**JENKINS, "url": f"job/x/{id_}/"})
    body = {"jsonrpc": "2.0", "method": f"ResourceMonitor.Resources.{method}",
            "params": params, "id": id_}  # fmt: skip
    return json.dumps(body).encode()


def post(body: bytes, *headers: bytes, version: bytes = b"1.1") -> bytes:
    """``POST /`` with ``body``: Host and Content-Length, then ``headers``."""
    head = [b"POST / HTTP/%s" % version, b"Host: agent", b"Content-Length: %d" % len(body)]
    return b"\r\n".join([*head, *headers, b"", body])


class Reader:
    """Reads answers off one connection, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed; unread: {self.data[:200]!r}")
        self.data += chunk

    def answer(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        """The next answer: its status line, headers (lower-case names) and body."""
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, self.data = self.data.split(b"\r\n\r\n", 1)
        status, *lines = head.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (li.split(b":", 1) for li in lines)}
        length = int(headers.get(b"content-length", b"0"))
        while len(self.data) < length:
            self._more()
        body, self.data = self.data[:length], self.data[length:]
        return status, headers, body

    def closed_within(self, seconds: float) -> bool:
        """Whether the agent closes the connection within ``seconds`` (having sent nothing)."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(4096) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


def handovers(agent: AgentProcess) -> float:
    """Connections handed to aiohttp so far -- this scrape's own among them."""
    return Scrape(agent).value("resource_agent_http_handovers_total")


def connect(agent: AgentProcess) -> Reader:
    return Reader(socket.create_connection((agent.host, agent.port), timeout=10))


def result_of(answer: tuple[bytes, dict[bytes, bytes], bytes], id_: Any) -> Any:
    status, headers, body = answer
    assert status == b"HTTP/1.1 200 OK", (status, body)
    assert headers[b"content-type"] == b"application/json-rpc; charset=utf-8", headers
    return check_result(check_envelope(id_, json.loads(body)))


def test_pipelined_calls_are_answered_in_order(agent: AgentProcess) -> None:
    before = handovers(agent)
    conn = connect(agent)
    conn.sock.sendall(
        post(call("Reserve", 1, resource="e-0", timeout=30))
        + post(call("Reserve", 2, resource="e-0", timeout=30))
        + post(call("Reserve", "three", resource="e-1", timeout=30))
    )
    first = result_of(conn.answer(), 1)
    second = result_of(conn.answer(), 2)
    third = result_of(conn.answer(), "three")
    assert first.ok and first.key
    assert not second.ok and second.code == Code.HELD, second
    assert third.ok
    conn.sock.sendall(post(call("Release", 4, resource="e-0", key=first.key)))
    conn.sock.sendall(post(call("Release", 5, resource="e-1", key=third.key)))
    assert result_of(conn.answer(), 4).ok and result_of(conn.answer(), 5).ok
    conn.sock.close()
    # The lane answered them all: the one connection handed over since is the scrape's.
    assert handovers(agent) == before + 1


def test_a_call_in_pieces_is_answered_and_the_connection_kept(agent: AgentProcess) -> None:
    conn = connect(agent)
    whole = post(call("Reserve", 7, resource="e-2", timeout=30))
    for piece in (whole[:9], whole[9:40], whole[40:-5], whole[-5:]):
        conn.sock.sendall(piece)
        time.sleep(0.1)
    answer = conn.answer()
    headers = answer[1]
    key = result_of(answer, 7).key
    # What aiohttp's answers carry, and the keep-alive promise Jenkins' client listens to.
    assert headers[b"keep-alive"] == b"timeout=1", headers
    assert b"date" in headers and b"server" in headers and b"connection" not in headers
    conn.sock.sendall(post(call("Release", 8, resource="e-2", key=key)))
    assert result_of(conn.answer(), 8).ok
    # Idle after its answer, the connection closes after header_timeout.
    began = time.monotonic()
    assert conn.closed_within(HEADER_TIMEOUT + 5)
    assert HEADER_TIMEOUT * 0.8 < time.monotonic() - began < HEADER_TIMEOUT + 3


def test_a_call_whose_body_is_late_is_answered_408(agent: AgentProcess) -> None:
    conn = connect(agent)
    body = call("Reserve", 9, resource="e-3", timeout=30)
    conn.sock.sendall(post(body)[:-10])
    began = time.monotonic()
    status, headers, payload = conn.answer()
    assert status == b"HTTP/1.1 408 Request Timeout", (status, payload)
    assert headers[b"connection"] == b"close"
    error = json.loads(payload)["error"]
    assert error["code"] == Code.TOO_SLOW and "1 s" in error["message"], error
    assert BODY_TIMEOUT * 0.8 < time.monotonic() - began < BODY_TIMEOUT + 3
    assert conn.closed_within(5)
    assert agent.get("/api/resources/e-3")["state"] == "free"


def test_other_requests_hand_the_connection_to_aiohttp(agent: AgentProcess) -> None:
    conn = connect(agent)
    conn.sock.sendall(post(call("Reserve", 10, resource="e-4", timeout=30)))
    key = result_of(conn.answer(), 10).key
    before = handovers(agent)
    # REST on the same connection, then JSON-RPC again: from here on aiohttp answers.
    conn.sock.sendall(b"GET /api/resources/e-4 HTTP/1.1\r\nHost: agent\r\n\r\n")
    status, _, body = conn.answer()
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["state"] == "reserved"
    conn.sock.sendall(post(call("Release", 11, resource="e-4", key=key)))
    assert result_of(conn.answer(), 11).ok
    conn.sock.close()
    assert handovers(agent) == before + 2  # this connection, once, and the scrape


@pytest.mark.parametrize(
    ("shape", "status"),
    [
        ("http/1.0", b"HTTP/1.0 200 OK"),
        ("connection close", b"HTTP/1.1 200 OK"),
        ("chunked", b"HTTP/1.1 200 OK"),
        ("expect 100-continue", b"HTTP/1.1 100 Continue"),
        ("query string", b"HTTP/1.1 200 OK"),
        ("no content-length", b"HTTP/1.1 200 OK"),
        ("130 header lines", b"HTTP/1.0 400 Bad Request"),
        ("over 64 KiB", b"HTTP/1.1 413 Request Entity Too Large"),
        ("two content-lengths", b"HTTP/1.0 400 Bad Request"),
        ("space before the colon", b"HTTP/1.0 400 Bad Request"),
        ("a header line over 8 KiB", b"HTTP/1.0 400 Bad Request"),
        ("12 KiB of header lines", b"HTTP/1.1 200 OK"),
    ],
)
def test_what_the_lane_does_not_take_aiohttp_answers(
    agent: AgentProcess, shape: str, status: bytes
) -> None:
    body = call("Reserve", 12, resource="e-5", timeout=30)
    request = {
        "http/1.0": post(body, version=b"1.0"),
        "connection close": post(body, b"Connection: close"),
        "chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
        "expect 100-continue": post(body, b"Expect: 100-continue"),
        "query string": post(body).replace(b"POST / ", b"POST /?from=test ", 1),
        "no content-length": b"POST / HTTP/1.1\r\nHost: a\r\n\r\n",
        "130 header lines": post(body, *(b"X-%d: y" % i for i in range(127))),
        "over 64 KiB": post(b" " * (64 * 1024) + body),
        "two content-lengths": post(body, b"Content-Length: %d" % len(body)),
        "space before the colon": post(body, b"X-Odd : yes"),
        "a header line over 8 KiB": post(body, b"X-Big: " + b"b" * 9000),
        "12 KiB of header lines": post(body, *(b"X-%d: %s" % (i, b"b" * 4000) for i in range(3))),
    }[shape]
    before = handovers(agent)
    conn = connect(agent)
    conn.sock.sendall(request)
    answer = conn.answer()
    assert answer[0] == status, answer
    assert handovers(agent) == before + 2  # this one and the scrape: aiohttp answered
    if shape == "expect 100-continue":
        answer = conn.answer()  # the answer proper follows
    if answer[0].endswith(b"200 OK"):
        if shape == "no content-length":  # no body is an empty one: a parse error
            assert json.loads(answer[2])["error"]["code"] == -32700, answer
        else:
            result = check_result(check_envelope(12, json.loads(answer[2])))
            assert result.ok, result
            assert agent.post("/api/resources/e-5/release", {"force": True}).status == 200
    conn.sock.close()
    assert agent.get("/api/resources/e-5")["state"] == "free"


def test_a_client_that_does_not_read_is_throttled_not_dropped(agent: AgentProcess) -> None:
    # More than the lane buffers (a header and a body) while it answers: it stops reading
    # until the answers are taken, and every call is answered, in order.
    conn = connect(agent)
    calls = 600
    conn.sock.sendall(b"".join(post(call("Reserve", i, resource="e-6", timeout=30))
                               for i in range(calls)))  # fmt: skip
    assert agent.get("/api/health")["status"] == "ok"  # others are served meanwhile
    results = [result_of(conn.answer(), i) for i in range(calls)]
    assert results[0].ok and not any(r.ok for r in results[1:])
    conn.sock.sendall(post(call("Release", "r", resource="e-6", key=results[0].key)))
    assert result_of(conn.answer(), "r").ok
    conn.sock.close()


def test_jenkins_outside_the_allowlist_is_refused_403(tmp_path_factory: Any) -> None:
    with running_agent(
        tmp_path_factory.mktemp("express-403"),
        resources=["e-7"],
        config={"server": {"jsonrpc_allow": ["127.0.0.2"]}},
    ) as agent:
        conn = connect(agent)
        conn.sock.sendall(post(call("Reserve", 1, resource="e-7", timeout=30)))
        status, headers, body = conn.answer()
        assert status == b"HTTP/1.1 403 Forbidden", (status, body)
        assert body == b"JSON-RPC is not answered from 127.0.0.1\n"
        assert headers[b"connection"] == b"close" and conn.closed_within(5)
        assert agent.get("/api/resources/e-7")["state"] == "free"

"""Limits that hold under abuse: slow clients, crowds of connections, slow bodies; and TLS.

The abusers are real sockets bound to other loopback addresses (127.0.0.2 and
up), so the agent counts them apart from Jenkins' calls, which come from
127.0.0.1 through the jsonrpc4j stand-in, one fresh connection per call as
Jenkins makes them. Bounds on time are generous (a loaded 2-core machine);
the figures are measured by bench/slow_clients.py (docs/security.md).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, running_agent
from tests.support.net import free_port
from tests.support.slowloris import PARTIAL, SlowClients, percentile, reserve_latencies

HEADER_TIMEOUT = 1.5
PER_ADDRESS = 16
MAX_CONNECTIONS = 40
TLS = Path(__file__).parents[1] / "fakes" / "tls"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    server = {
        "header_timeout": HEADER_TIMEOUT,
        "body_timeout": 1.0,
        "max_connections": MAX_CONNECTIONS,
        "max_connections_per_address": PER_ADDRESS,
    }
    with running_agent(
        tmp_path_factory.mktemp("limits"), resources=["j-1", "x-1"], config={"server": server}
    ) as running:
        yield running


def connect(agent: AgentProcess, source: str) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", agent.port), timeout=10, source_address=(source, 0)
    )
    return sock


def closed_within(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing, if it closed within ``timeout``; None if not."""
    sock.settimeout(timeout)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return got


# ------------------------------------------------------------ slow-loris


def reserve_p99(agent: AgentProcess, calls: int = 100) -> float:
    """Jenkins' Reserve latency, 99th percentile, in seconds."""
    return percentile(reserve_latencies(agent.url, "j-1", calls), 0.99)


def test_slow_clients_do_not_delay_jenkins(agent: AgentProcess) -> None:
    quiet = reserve_p99(agent)
    slow = SlowClients(agent.port, "127.0.0.2", 40, quick=HEADER_TIMEOUT / 2)
    slow.start()
    try:
        time.sleep(0.2)
        busy = reserve_p99(agent)
        time.sleep(max(0.0, HEADER_TIMEOUT * 1.5 - 1))  # so the agent cut some of them
    finally:
        slow.stop.set()
        slow.join(10)
    print(f"Reserve p99: {quiet * 1000:.1f} ms quiet, {busy * 1000:.1f} ms with 40 slow clients")
    # Generous: what matters is that Jenkins' queue never waits on them (seconds would).
    assert busy < max(1.0, 10 * quiet), (quiet, busy)
    assert slow.refused >= 40 - PER_ADDRESS, "the connections over the cap were not refused"
    assert slow.cut > 0, "no slow header was cut off"
    assert slow.longest < HEADER_TIMEOUT + 3, slow.longest
    assert "too many connections from 127.0.0.2" in agent.wait_log("refusing connections")


def test_the_connection_caps_refuse_at_once_and_recover(agent: AgentProcess) -> None:
    crowd = [connect(agent, "127.0.0.2") for _ in range(PER_ADDRESS)]
    try:
        extra = connect(agent, "127.0.0.2")
        answer = closed_within(extra, 2)
        assert answer is not None, "the connection over the per-address cap stayed open"
        if answer:  # else the reset came first; either way it was not served
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), answer
            assert json.loads(body)["error"]["code"] == Code.BUSY
        # Another address is served meanwhile...
        assert agent.get("/api/health")["status"] == "ok"
        # ...until all of them together reach the total.
        crowd += [
            connect(agent, f"127.0.0.{3 + i // PER_ADDRESS}")
            for i in range(MAX_CONNECTIONS - PER_ADDRESS)
        ]
        assert closed_within(connect(agent, "127.0.0.9"), 2) is not None
    finally:
        for sock in crowd:
            sock.close()
    time.sleep(0.2)
    assert agent.get("/api/health")["status"] == "ok"


def test_a_header_must_arrive_in_time_and_idle_connections_close(agent: AgentProcess) -> None:
    sock = connect(agent, "127.0.0.3")
    began = time.monotonic()
    sock.send(PARTIAL)
    assert closed_within(sock, HEADER_TIMEOUT + 5) == b"", "a partial header was answered"
    assert HEADER_TIMEOUT * 0.8 < time.monotonic() - began < HEADER_TIMEOUT + 3
    sock.close()
    # A kept-alive connection is closed once idle for as long.
    sock = connect(agent, "127.0.0.3")
    sock.send(b"GET /api/health HTTP/1.1\r\nHost: agent\r\n\r\n")
    sock.settimeout(5)
    first = sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200"), first
    # Told so, a client (Java's) drops its idle connection a second before the agent does.
    assert b"\r\nKeep-Alive: timeout=1\r\n" in first, first
    began = time.monotonic()
    assert closed_within(sock, HEADER_TIMEOUT + 5) == b""
    assert time.monotonic() - began < HEADER_TIMEOUT + 3
    sock.close()


def test_a_body_must_arrive_in_time(agent: AgentProcess) -> None:
    sock = connect(agent, "127.0.0.4")
    sock.send(
        b"POST /api/resources/x-1/reserve HTTP/1.1\r\nHost: agent\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    answer = closed_within(sock, 10)
    sock.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == Code.TOO_SLOW and "1 s" in body["error"]["message"]
    assert agent.get("/api/resources/x-1")["state"] == "free"


# ------------------------------------------------------------ TLS


def test_a_tls_listener_serves_people_and_scripts(agent_factory: Any) -> None:
    tls_port = free_port()
    token = "t" * 32
    agent: AgentProcess = agent_factory(
        start=False, resources=["t-1"], env={"CREDENTIALS_DIRECTORY": None}
    )
    (agent.directory / "user.token").write_text(token)
    agent.configure(
        {
            "server": {
                "tls_listen": f"127.0.0.1:{tls_port}",
                "tls_cert": str(TLS / "cert.pem"),
                "tls_key": str(TLS / "key.pem"),
                "token_files": {"user": "user.token"},
            }
        }
    )
    agent.start()
    context = ssl.create_default_context(cafile=str(TLS / "cert.pem"))
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /api/resources/t-1/reserve HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    # The CLI over https trusts what SSL_CERT_FILE names; plain HTTP still serves.
    run = subprocess.run(
        [sys.executable, "-m", "agent.cli", "list", "--url", f"https://127.0.0.1:{tls_port}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "SSL_CERT_FILE": str(TLS / "cert.pem")},
    )
    assert run.returncode == 0 and "t-1" in run.stdout and "reserved" in run.stdout, run
    assert agent.get("/api/resources/t-1")["state"] == "reserved"
    assert f"127.0.0.1:{tls_port} (TLS)" in agent.wait_log("serving")

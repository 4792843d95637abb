"""The ``resource-agent`` command line, run as a real process against a real agent.

Exit codes: 0 done, 1 refused (the reason printed), 2 usage error, 3 agent
unreachable.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentError, AgentProcess
from tests.support.net import free_port


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def cli(*args: str, url: str | None = None) -> Run:
    env = dict(os.environ)
    env.pop("RESOURCE_AGENT_URL", None)
    if url is not None:
        env["RESOURCE_AGENT_URL"] = url
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def key_of(run: Run) -> str:
    assert run.code == 0, run
    match = re.search(r"^key: (\S+)$", run.out, re.MULTILINE)
    assert match, run.out
    return match.group(1)


def test_reserve_lock_renew_release(pool_agent: AgentProcess, rid: str) -> None:
    url = pool_agent.url
    reserved = cli("reserve", rid, "--timeout", "60", url=url)
    key = key_of(reserved)
    assert reserved.out.startswith(f"reserved {rid}, expires ")
    holder = pool_agent.get(f"/api/resources/{rid}")["holder"]["holder"]
    assert re.fullmatch(r"[^@]+@\S+", holder["url"]), holder  # user@host

    locked = cli("lock", rid, "--key", key, "--lease", "30", url=url)
    assert key_of(locked) == key and locked.out.startswith(f"locked {rid}, expires ")
    assert key_of(cli("renew", rid, "--key", key, "--lease", "90", url=url)) == key

    released = cli("release", rid, "--key", key, url=url)
    assert (released.code, released.out) == (0, f"released {rid}\n")
    assert pool_agent.get(f"/api/resources/{rid}")["state"] == "free"


def test_lock_without_reservation_and_refusals(pool_agent: AgentProcess, rid: str) -> None:
    url = pool_agent.url
    key = key_of(cli("lock", rid, url=url))
    held = cli("reserve", rid, url=url)
    assert held.code == 1 and f"refused ({int(Code.HELD)})" in held.err and rid in held.err
    wrong = cli("release", rid, "--key", "nope", url=url)
    assert wrong.code == 1 and f"refused ({int(Code.WRONG_KEY)})" in wrong.err
    no_lease = cli("renew", rid, "--key", key, url=url)
    assert no_lease.code == 1 and "lease" in no_lease.err
    forced = cli("release", rid, "--force", url=url)
    assert forced.code == 0
    again = cli("release", rid, "--key", key, url=url)
    assert again.code == 1 and f"refused ({int(Code.NOT_HELD)})" in again.err


def test_disable_enable_and_list(pool_agent: AgentProcess, rid: str) -> None:
    url = pool_agent.url
    assert cli("disable", rid, "--reason", "cracked screen", url=url).out == f"disabled {rid}\n"
    table = cli("list", url=url)
    assert table.code == 0
    header, *rows = table.out.splitlines()
    assert header.split() == ["ID", "KIND", "STATE", "JENKINS", "JOB", "SINCE", "EXPIRES", "HEALTH"]
    [row] = [r for r in rows if r.startswith(rid + " ")]
    assert row.split()[:3] == [rid, "static", "disabled"]
    assert row.endswith("disabled: cracked screen")
    refused = cli("reserve", rid, url=url)
    assert refused.code == 1 and "cracked screen" in refused.err
    assert cli("enable", rid, url=url).out == f"enabled {rid}\n"
    assert pool_agent.get(f"/api/resources/{rid}")["state"] == "free"


def test_list_json_and_show(pool_agent: AgentProcess, rid: str) -> None:
    url = pool_agent.url
    key = key_of(cli("lock", rid, url=url))
    listed = cli("list", "--json", url=url)
    assert listed.code == 0
    assert json.loads(listed.out) == pool_agent.get("/api/resources")
    assert key not in listed.out  # keys are never listed
    shown = cli("show", "--json", rid, url=url)
    assert shown.code == 0 and json.loads(shown.out) == pool_agent.get(f"/api/resources/{rid}")
    table = cli("list", url=url)
    [row] = [r for r in table.out.splitlines() if r.startswith(rid + " ")]
    assert "locked" in row and key not in table.out
    missing = cli("show", "no-such", url=url)
    assert missing.code == 1
    assert missing.err == f"refused ({int(Code.UNKNOWN_RESOURCE)}): no resource with id 'no-such'\n"


@pytest.mark.parametrize(
    "args",
    [
        ("reserve", "r", "--timeout", "0"),
        ("reserve", "r", "--timeout", "soon"),
        ("reserve", "r", "--timeout", "inf"),
        ("reserve", "r", "--timeout", "nan"),
        ("reserve", "r", "--timeout", "604801"),
        ("lock", "r", "--lease", "-5"),
        ("renew", "r", "--key", "k", "--lease", "inf"),
        ("run", "--lease", "nan", "true"),
        ("run", "--wait", "--timeout", "-inf", "true"),
        ("history", "r", "--limit", "0"),
        ("release", "r"),  # neither --key nor --force
        ("renew", "r"),  # --key is required
        ("show",),
        ("frobnicate",),
        ("list", "--url", "not-a-url"),
        ("list", "--url", "http://127.0.0.1:99999"),
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(pool_agent: AgentProcess, args: tuple[str, ...]) -> None:
    run = cli(*args, url=pool_agent.url)
    assert run.code == 2, run
    assert "Error" in run.err and "Traceback" not in run.err


def test_unreachable_agent_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("list",), ("reserve", "r"), ("release", "r", "--force")):
        run = cli(*args, url=url)
        assert run.code == 3, run
        assert f"no agent at {url}" in run.err


class _NotAnAgent(http.server.BaseHTTPRequestHandler):
    """Jenkins' front page on every path; 404 pages for the resources."""

    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/api/resources/") else 200
        body = b"<html><body>Dashboard [Jenkins]</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_an_agent() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAnAgent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ssh_like() -> Iterator[str]:
    """A TCP server that answers everything with an SSH banner."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def test_something_else_at_the_url_exits_3(not_an_agent: str, ssh_like: str) -> None:
    for url, args in (
        (not_an_agent, ("list",)),
        (not_an_agent, ("show", "x")),
        (ssh_like, ("list",)),
    ):
        run = cli(*args, url=url)
        assert run.code == 3, run
        assert run.err.startswith(f"resource-agent: no agent at {url}: "), run.err
        assert "Traceback" not in run.err


class _OtherJsonService(http.server.BaseHTTPRequestHandler):
    """Some other JSON API: a JSON object, but none of the agent's fields."""

    body = b'{"name": "some other service"}'

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _DeepJson(_OtherJsonService):
    """JSON nested deeper than Python's parser recurses."""

    body = b"[" * 100_000


@pytest.mark.parametrize("handler", [_OtherJsonService, _DeepJson])
def test_other_json_service_at_the_url_exits_3(
    handler: type[http.server.BaseHTTPRequestHandler],
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for args in (("list",), ("status",), ("reserve", "r"), ("enable", "r")):
            run = cli(*args, url=url)
            assert run.code == 3, run
            assert run.err.startswith(f"resource-agent: no agent at {url}: "), run.err
            assert "Traceback" not in run.err
    finally:
        server.shutdown()
        server.server_close()


def test_url_option_beats_the_environment(pool_agent: AgentProcess) -> None:
    run = cli("list", "--json", "--url", pool_agent.url, url="http://127.0.0.1:1")
    assert run.code == 0 and "resources" in json.loads(run.out)


# ------------------------------------------------------------------ serve


def test_serve_refuses_a_taken_port(
    pool_agent: AgentProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = AgentProcess(tmp_path_factory.mktemp("second"), port=pool_agent.port)
    with pytest.raises(AgentError):
        second.start()
    assert second.wait() == 1
    second.wait_log(f"cannot listen on 127.0.0.1:{pool_agent.port}", timeout=1)
    assert pool_agent.get("/api/health")["status"] == "ok"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"agent": {"grace_period": "30"}}, "agent.grace_period"),
        ({"server": {"colour": "blue"}}, "server.colour: unknown key"),
        ({"resource": [{"id": "a"}, {"id": "a"}]}, "declared twice"),
    ],
    ids=["wrong type", "unknown key", "duplicate id"],
)
def test_serve_names_the_config_problem(
    tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any], message: str
) -> None:
    agent = AgentProcess(tmp_path_factory.mktemp("bad"), config=config)
    with pytest.raises(AgentError):
        agent.start()
    assert agent.wait() == 1
    assert f"config {agent.config_path}: " in agent.log() and message in agent.log()
    assert "Traceback" not in agent.log()


def test_serve_names_an_unusable_state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("state")
    (directory / "not-a-dir").write_text("")
    agent = AgentProcess(directory, config={"agent": {"state_dir": str(directory / "not-a-dir")}})
    with pytest.raises(AgentError):
        agent.start()
    assert agent.wait() == 1
    assert "not-a-dir" in agent.log() and "Traceback" not in agent.log()

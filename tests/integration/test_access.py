"""Who may call what, against the real agent: sources for JSON-RPC, tokens and roles for REST.

Calls come from loopback (127.0.0.1, and other 127.x addresses bound on
purpose) and from this machine's own non-loopback address, which the agent
sees as a caller from elsewhere. The tokens are random per run, so a grep of
the log and the answers for them finds only a leak.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, Response, http_request, running_agent
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.net import other_address

OTHER = other_address()
TOKENS = {"ci": secrets.token_hex(20), "ops": secrets.token_hex(20)}
WRONG = secrets.token_hex(20)
POOL = [f"g-{i:02d}" for i in range(90)]


def write_tokens(directory: Path) -> None:
    for name, token in TOKENS.items():
        (directory / f"{name}.token").write_text(token + "\n")
    (directory / "wrong.token").write_text(WRONG + "\n")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """An agent with a user token (ci) and an admin token (ops), reads for token holders."""
    directory = tmp_path_factory.mktemp("guarded")
    write_tokens(directory)
    server = {
        "token_files": {"ci": "ci.token", "ops": "ops.token"},
        "admin_tokens": ["ops"],
        "open_reads": False,
    }
    with running_agent(
        directory,
        resources=POOL,
        config={"server": server},
        listen_host="0.0.0.0",
        env={"CREDENTIALS_DIRECTORY": None},
        log_level="debug",
    ) as agent:
        yield agent


@pytest.fixture(scope="module")
def pool() -> Iterator[str]:
    return iter(POOL)


@pytest.fixture
def rid(pool: Iterator[str]) -> str:
    return next(pool)


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def call(
    agent: AgentProcess,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    place: str = "loopback",
    method: str = "POST",
) -> Response:
    """A REST call from loopback or from this machine's other address."""
    host = agent.host if place == "loopback" else OTHER
    return http_request(
        f"http://{host}:{agent.port}",
        method,
        path,
        {} if body is None and method == "POST" else body,
        headers=auth(token),
    )


def admin(agent: AgentProcess, rid: str, action: str, body: Any = None) -> dict[str, Any]:
    resp = call(agent, f"/api/resources/{rid}/{action}", body, token=TOKENS["ops"])
    assert resp.status == 200, resp.body
    return resp.json()  # type: ignore[no-any-return]


def attempt(agent: AgentProcess, rid: str, action: str, token: str | None, place: str) -> Response:
    """Set ``rid`` up as ``action`` needs (with the admin token), then try it."""
    path = f"/api/resources/{rid}/{action.split('-', maxsplit=1)[0]}"
    if action in ("release-key", "renew"):
        key = admin(agent, rid, "reserve", {"timeout": 60})["hold"]["key"]
        return call(agent, path, {"key": key}, token=token, place=place)
    if action == "release-force":
        admin(agent, rid, "reserve", {"timeout": 60})
        return call(agent, path, {"force": True}, token=token, place=place)
    if action == "enable":
        admin(agent, rid, "disable")
    return call(agent, path, token=token, place=place)


ACTIONS = ["reserve", "lock", "release-key", "renew", "release-force", "disable", "enable"]
NEEDS_ADMIN = {"release-force", "disable", "enable"}
WITH_KEY = {"release-key", "renew"}


def expected(action: str, token: str | None, place: str) -> int:
    if token is None:
        return 200 if action in WITH_KEY and place == "loopback" else 401
    if token == "wrong":
        return 401
    if token == "ci" and action in NEEDS_ADMIN:
        return 403
    return 200


@pytest.mark.parametrize("place", ["loopback", "other"])
@pytest.mark.parametrize("token", [None, "wrong", "ci", "ops"])
@pytest.mark.parametrize("action", ACTIONS)
def test_rest_changes_by_token_role_and_place(
    guarded: AgentProcess, rid: str, action: str, token: str | None, place: str
) -> None:
    secret = WRONG if token == "wrong" else TOKENS.get(token or "")
    resp = attempt(guarded, rid, action, secret, place)
    want = expected(action, token, place)
    assert resp.status == want, (resp.status, resp.body)
    if want == 200:
        return
    error = resp.json()["error"]
    if want == 403:
        assert error["code"] == Code.FORBIDDEN
        assert "admin role" in error["message"] and "'ci' has the user role" in error["message"]
    else:
        assert error["code"] == Code.UNAUTHORIZED
        assert resp.headers["www-authenticate"].startswith("Bearer")
        if token is None:
            role = "admin role" if action in NEEDS_ADMIN else "user or admin role"
            assert role in error["message"], error
        else:
            assert "not one this agent knows" in error["message"], error


def test_a_malformed_authorization_header_is_refused(guarded: AgentProcess, rid: str) -> None:
    resp = http_request(
        guarded.url, "POST", f"/api/resources/{rid}/reserve", {}, headers={"Authorization": "x"}
    )
    assert (resp.status, resp.json()["error"]["code"]) == (401, Code.UNAUTHORIZED)
    assert "Bearer <token>" in resp.json()["error"]["message"]


def test_reads_need_a_token_without_open_reads(guarded: AgentProcess) -> None:
    for place in ("loopback", "other"):
        bare = call(guarded, "/api/resources", method="GET", place=place)
        assert (bare.status, bare.json()["error"]["code"]) == (401, Code.UNAUTHORIZED)
        assert call(guarded, "/api/resources", method="GET", token=TOKENS["ci"]).status == 200
    # Liveness and the API's description stay open, whatever credentials a monitor sends.
    assert call(guarded, "/api/health", method="GET", place="other").status == 200
    assert call(guarded, "/api/health", method="GET", token=WRONG).status == 200
    assert call(guarded, "/api/openapi.json", method="GET", place="other").status == 200


# ------------------------------------------------------------ without tokens


@pytest.fixture(scope="module")
def open_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """A fresh install: no token_files, open reads."""
    with running_agent(
        tmp_path_factory.mktemp("open"), resources=["o-1", "o-2"], listen_host="0.0.0.0"
    ) as agent:
        yield agent


def test_without_tokens_changes_come_from_loopback_only(open_agent: AgentProcess) -> None:
    refused = call(open_agent, "/api/resources/o-1/reserve", place="other")
    assert (refused.status, refused.json()["error"]["code"]) == (401, Code.UNAUTHORIZED)
    assert "from this machine only" in refused.json()["error"]["message"]
    assert "token_files" in refused.json()["error"]["message"]
    assert call(open_agent, "/api/resources", method="GET", place="other").status == 200
    # A token this agent does not know is refused even where none is needed: worth telling.
    assert call(open_agent, "/api/resources", method="GET", token=WRONG).status == 401
    # A person at the machine may do everything, forced releases included.
    assert call(open_agent, "/api/resources/o-1/reserve").status == 200
    assert call(open_agent, "/api/resources/o-1/release", {"force": True}).status == 200
    assert call(open_agent, "/api/resources/o-1/disable").status == 200
    assert call(open_agent, "/api/resources/o-1/enable").status == 200
    line = open_agent.wait_log("no [server] token_files")
    assert "any local user can force-release and disable" in line


def test_jsonrpc_from_elsewhere_is_refused_by_default(open_agent: AgentProcess) -> None:
    resp = rpc_from(open_agent, OTHER)
    assert resp.status == 403 and not resp.body.startswith(b"{")
    line = open_agent.wait_log(f"JSON-RPC from {OTHER} refused")
    assert "jsonrpc_allow" in line and "add its host name" in line
    start = open_agent.wait_log("JSON-RPC (Jenkins) is answered from")
    assert "127.0.0.0/8" in start and "jsonrpc_allow" in start


# ------------------------------------------------------------ JSON-RPC sources


def rpc_from(agent: AgentProcess, source: str, host: str = "127.0.0.1") -> Response:
    """One Reserve from ``source`` (bound), raw: no check of the answer."""
    if host == "127.0.0.1" and not source.startswith("127."):
        host = source  # a non-loopback source reaches the agent at that address
    body = {
        "jsonrpc": "2.0",
        "method": "ResourceMonitor.Resources.Reserve",
        "params": {"resource": "nope", "timeout": 3, "clientInfo": {"id": "j", "url": "u"}},
        "id": "1",
    }
    conn = http.client.HTTPConnection(host, agent.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/", json.dumps(body), {"Content-Type": "application/json-rpc"})
        resp = conn.getresponse()
        return Response(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def test_jsonrpc_only_from_the_allowed_sources(agent_factory: Any) -> None:
    agent = agent_factory(
        resources=["j-1"], config={"server": {"jsonrpc_allow": ["127.0.0.2", "127.0.0.4/31"]}}
    )
    for source in ("127.0.0.2", "127.0.0.4", "127.0.0.5"):
        client = JsonRpc4jClient(agent.url, source=source)
        assert client.reserve("j-1", 1, "job/a/").ok, source
        client.release("j-1", client.reserve("j-1", 1, "job/a/").key, "job/a/")
    # The list replaces the default: this machine's 127.0.0.1 is not on it.
    for source in ("127.0.0.3", "127.0.0.1"):
        resp = rpc_from(agent, source)
        assert resp.status == 403, source
        assert resp.body == f"JSON-RPC is not answered from {source}\n".encode()
        assert "jsonrpc_allow" in agent.wait_log(f"JSON-RPC from {source} refused")
    # Only JSON-RPC is by address: REST keeps its own rules.
    assert agent.get("/api/resources/j-1")["state"] == "free"


def test_host_names_and_the_coordinators_are_resolved(agent_factory: Any) -> None:
    coordinator = {"url": "http://127.0.0.7:9/", "retry_max": 60.0, "timeout": 1.0}
    agent = agent_factory(
        resources=["h-1"],
        config={
            "server": {"jsonrpc_allow": ["localhost", "coordinators"]},
            "coordinator": [coordinator],
        },
    )
    for source in ("127.0.0.1", "127.0.0.7"):  # localhost, the coordinator's host
        assert rpc_from(agent, source).status == 200, source
    assert rpc_from(agent, "127.0.0.2").status == 403
    line = agent.wait_log("JSON-RPC (Jenkins) is answered from")
    assert "localhost (" in line and "127.0.0.7/32" in line


# ------------------------------------------------------------ the command line


def cli(agent: AgentProcess, *args: str, env: dict[str, str] | None = None) -> Any:
    environ = {k: v for k, v in os.environ.items() if k != "RESOURCE_AGENT_TOKEN_FILE"}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args, "--url", agent.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**environ, **(env or {})},
    )


def test_the_cli_sends_its_token_and_says_which_role_is_missing(
    guarded: AgentProcess, rid: str
) -> None:
    directory = guarded.directory
    bare = cli(guarded, "reserve", rid)
    assert bare.returncode == 4, bare
    assert "needs a bearer token" in bare.stderr
    user = cli(guarded, "disable", rid, "--token-file", str(directory / "ci.token"))
    assert user.returncode == 4, user
    assert "admin role" in user.stderr and "'ci' has the user role" in user.stderr
    ops = cli(
        guarded, "disable", rid, env={"RESOURCE_AGENT_TOKEN_FILE": str(directory / "ops.token")}
    )
    assert ops.returncode == 0, ops
    missing = cli(guarded, "list", "--token-file", str(directory / "missing.token"))
    assert missing.returncode == 2 and "missing.token" in missing.stderr


# ------------------------------------------------------------ nothing leaks


def test_no_token_or_key_is_ever_logged_or_answered(guarded: AgentProcess, rid: str) -> None:
    """Every kind of call, with every token, right and wrong, from both places; then grep."""
    answers: list[bytes] = []
    for secret in (*TOKENS.values(), WRONG, None):
        for place in ("loopback", "other"):
            for action in ACTIONS:
                answers.append(attempt(guarded, rid, action, secret, place).body)
                state = call(guarded, f"/api/resources/{rid}", method="GET", token=TOKENS["ci"])
                if state.json()["holder"] is not None:
                    admin(guarded, rid, "release", {"force": True})
                admin(guarded, rid, "enable")
    ci_file = str(guarded.directory / "ci.token")
    shown = [
        call(guarded, "/api/resources", method="GET", token=TOKENS["ci"]).body,
        call(guarded, f"/api/resources/{rid}/history", method="GET", token=TOKENS["ci"]).body,
        cli(guarded, "history", rid, "--token-file", ci_file).stdout.encode(),
        cli(guarded, "list", "--token-file", ci_file).stdout.encode(),
    ]
    keys = [
        json.loads(body)["hold"]["key"]
        for body in answers
        if body.startswith(b'{"resource"') and b'"key"' in body
    ]
    assert len(keys) > 10, "few holds were taken: the grep for keys would prove little"
    log = guarded.log()
    for secret in (*TOKENS.values(), WRONG):
        assert secret not in log, "a token is in the log"
        assert not any(secret.encode() in body for body in answers + shown), "a token answered"
    for key in keys:
        assert key not in log, "a key is in the log"
        assert not any(key.encode() in body for body in shown), "a key is listed"
    assert "token=ops" in log and "token=ci" in log  # the names, and only the names

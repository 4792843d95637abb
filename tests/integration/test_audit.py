"""The audit trail: one line per change -- and the same facts in the history and the CLI.

A real agent with tokens and a session that fails its provisioning; Jenkins'
calls come through the strict jsonrpc4j stand-in, people's through REST and
the CLI. Every action is driven for real (expiry and lease end by letting time
pass), then found three times: as its ``agent.audit`` line, in
``GET /api/resources/{id}/history``, and in ``resource-agent history``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from agent.model import Code
from tests.agentproc import AgentProcess, running_agent
from tests.fakes.jsonrpc4j import JENKINS, JsonRpc4jClient, Mode
from tests.support.waiting import wait_for

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')  # a value: a JSON string, or a word
CI = "c" * 40
OPS = "o" * 40
TASK, BUILD = "job/phone-tests/", "job/phone-tests/12/"
FLAKY = {"id": "flaky", "metadata": {"flaky": "yes"}}
SESSION = {
    "kind": "static",
    "when": {"flaky": "yes"},
    "quarantine_after": 1,
    "lock_wait": 10.0,
    "provision": [{"step": "command", "name": "fails", "run": ["false"]}],
}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    directory = tmp_path_factory.mktemp("audit")
    (directory / "ci.token").write_text(CI)
    (directory / "ops.token").write_text(OPS)
    server = {"token_files": {"ci": "ci.token", "ops": "ops.token"}, "admin_tokens": ["ops"]}
    with running_agent(
        directory,
        resources=[f"a-{i}" for i in range(12)] + [FLAKY],
        config={"server": server, "session": [SESSION]},
        env={"CREDENTIALS_DIRECTORY": None},
        log_level="debug",
    ) as running:
        yield running


def rest(agent: AgentProcess, rid: str, action: str, body: Any, token: str) -> dict[str, Any]:
    resp = agent.request(
        "POST",
        f"/api/resources/{rid}/{action}",
        body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200, resp.body
    return resp.json()  # type: ignore[no-any-return]


def audit_lines(agent: AgentProcess, rid: str) -> list[dict[str, str]]:
    """The ``agent.audit`` lines about ``rid``, oldest first, as key=value dicts."""
    out = []
    for line in agent.log().splitlines():
        _, sep, rest = line.partition("agent.audit: ")
        if sep:
            fields = {k: json.loads(v) if v.startswith('"') else v for k, v in FIELD.findall(rest)}
            if fields.get("resource") == rid:
                out.append(fields)
    return out


def line_of(agent: AgentProcess, rid: str, action: str, outcome: str = "ok") -> dict[str, str]:
    def find() -> dict[str, str] | None:
        lines = audit_lines(agent, rid)
        return next((f for f in lines if f["action"] == action and f["outcome"] == outcome), None)

    found: dict[str, str] = wait_for(find, timeout=10, what=f"audit line {action} {rid}")
    return found


def history_of(agent: AgentProcess, rid: str) -> list[dict[str, Any]]:
    return agent.get(f"/api/resources/{rid}/history")["actions"]  # type: ignore[no-any-return]


def cli_history(agent: AgentProcess, rid: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "agent.cli", "history", rid, "--url", agent.url],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return run.stdout


# What each action's line must say: holder url (or none), address and token ("-": none;
# absent: the agent itself).
def expect_line(
    fields: dict[str, str], holder_url: str | None, address: str, token: str | None
) -> None:
    assert fields.get("holder_url") == holder_url, fields
    assert fields["address"] == address, fields
    assert fields.get("token") == token, fields


def test_every_action_is_one_line_and_the_same_in_history_and_cli(agent: AgentProcess) -> None:
    jenkins = JsonRpc4jClient(agent.url)
    # Jenkins: reserve, lock, release (JSON-RPC from 127.0.0.1, no token).
    key = jenkins.reserve("a-0", 60, TASK).key
    jenkins.lock("a-0", key, BUILD)
    jenkins.release("a-0", key, BUILD)
    # People: renew (user token), forced release, disable, enable (admin token).
    held = rest(agent, "a-1", "reserve", {"timeout": 60, "holder": "alice"}, CI)
    rest(agent, "a-1", "renew", {"key": held["hold"]["key"], "lease": 120}, CI)
    rest(agent, "a-1", "release", {"force": True}, OPS)
    rest(agent, "a-2", "disable", {"reason": "cracked screen"}, OPS)
    rest(agent, "a-2", "enable", {}, OPS)
    # Time: a reservation runs out, a lease ends.
    jenkins.reserve("a-3", 0.3, TASK)
    rest(agent, "a-4", "lock", {"lease": 0.3, "holder": "bob"}, CI)
    # A session: provisioning fails once and quarantines the resource (quarantine_after 1).
    refused = agent.request(
        "POST",
        "/api/resources/flaky/lock",
        {"holder": "carol"},
        headers={"Authorization": f"Bearer {CI}"},
    )
    assert refused.json()["error"]["code"] == Code.PROVISIONING_FAILED

    cases = [
        ("a-0", "reserve", TASK, "127.0.0.1", "-", "for 60 s"),
        ("a-0", "lock", BUILD, "127.0.0.1", "-", "no lease"),
        ("a-0", "release", BUILD, "127.0.0.1", "-", None),
        ("a-1", "renew", "alice", "127.0.0.1", "ci", "for 120 s"),
        ("a-1", "forced release", "alice", "127.0.0.1", "ops", None),
        ("a-2", "disable", None, "127.0.0.1", "ops", "cracked screen"),
        ("a-2", "enable", None, "127.0.0.1", "ops", None),
        ("a-3", "expiry", TASK, "agent", None, None),
        ("a-4", "lease end", "bob", "agent", None, None),
        ("flaky", "quarantine", "carol", "agent", None, None),
    ]
    for rid, action, *_ in cases:  # every change has happened (expiries take their time)
        line_of(agent, rid, action)
    printed = {rid: cli_history(agent, rid) for rid in dict.fromkeys(c[0] for c in cases)}
    for rid, action, holder_url, address, token, detail in cases:
        fields = line_of(agent, rid, action)
        expect_line(fields, holder_url, address, token)
        if detail is not None:
            assert fields["detail"] == detail, fields
        if holder_url in (TASK, BUILD):
            assert fields["holder_id"] == JENKINS, fields
        # The history has the same facts...
        [entry] = [e for e in history_of(agent, rid) if e["action"] == action]
        assert (entry["holder"] or {}).get("url") == holder_url, entry
        caller = entry["caller"]
        if address == "agent":
            assert caller is None, entry
        else:
            assert caller == {"address": address, "token": None if token == "-" else token}
        assert entry["detail"] == fields.get("detail", ""), (entry, fields)
        # ...and so does the command line.
        row = next(ln for ln in printed[rid].splitlines() if f"  {action}  " in ln)
        assert entry["at"] in row and (address in row if address != "agent" else "agent" in row)
    assert "provisioning flaky failed" in line_of(agent, "flaky", "quarantine")["detail"]
    # The agent's own release after the failed provisioning is told apart from a holder's.
    released = line_of(agent, "flaky", "release")
    assert (
        released["address"] == "agent" and released["detail"] == "by the agent: provisioning failed"
    )


def test_refusals_are_debug_lines_with_the_reason(agent: AgentProcess) -> None:
    jenkins = JsonRpc4jClient(agent.url)
    jenkins.reserve("a-5", 60, TASK)
    assert not JsonRpc4jClient(agent.url, jenkins="http://other/").reserve("a-5", 3, "job/x/").ok
    fields = line_of(agent, "a-5", "reserve", outcome="refused")
    assert (
        fields["code"] == str(int(Code.HELD)) and "reserved by job/phone-tests/" in fields["reason"]
    )
    assert fields["holder_id"] == "http://other/" and fields["holder_url"] == "job/x/"
    # REST: refused by the rules (a wrong key) and by access (no admin role).
    wrong = agent.request(
        "POST",
        "/api/resources/a-5/release",
        {"key": "guess"},
        headers={"Authorization": f"Bearer {CI}"},
    )
    assert wrong.status == 403
    assert line_of(agent, "a-5", "release", outcome="refused")["code"] == str(int(Code.WRONG_KEY))
    denied = agent.request(
        "POST", "/api/resources/a-5/disable", {}, headers={"Authorization": f"Bearer {CI}"}
    )
    assert denied.status == 403
    fields = line_of(agent, "a-5", "disable", outcome="refused")
    assert (fields["code"], fields["token"]) == (str(int(Code.FORBIDDEN)), "ci")
    for line in agent.log().splitlines():
        if "outcome=refused" in line:
            assert " DEBUG " in line, line


def test_a_holder_cannot_forge_an_audit_line(agent: AgentProcess) -> None:
    evil = "mallory\n2026-01-01 INFO agent.audit: action=forget resource=a-6 outcome=ok"
    rest(agent, "a-6", "reserve", {"holder": evil}, CI)
    fields = line_of(agent, "a-6", "reserve")
    assert fields["holder_url"] == evil  # one line, the value quoted whole
    assert [f["action"] for f in audit_lines(agent, "a-6")] == ["reserve"]


@pytest.mark.parametrize("mode", list(Mode))
def test_clientinfo_without_id_through_all_three_methods(agent: AgentProcess, mode: Mode) -> None:
    rid = "a-7" if mode is Mode.PLUGIN_1_1 else "a-8"
    jenkins = JsonRpc4jClient(agent.url, mode, jenkins=None)  # no root URL configured
    reserved = jenkins.reserve(rid, 60, TASK)
    assert reserved.ok, reserved
    assert jenkins.last_request is not None
    params = jenkins.last_request["params"]
    assert "id" not in (params[0] if isinstance(params, list) else params)["clientInfo"]
    locked = jenkins.lock(rid, reserved.key, BUILD)
    assert locked.ok and locked.key == reserved.key, locked
    assert agent.get(f"/api/resources/{rid}")["holder"]["holder"] == {"id": "", "url": BUILD}
    assert jenkins.release(rid, reserved.key, BUILD).ok
    # Refusals too are answered normally (NO), never as a JSON-RPC error.
    assert jenkins.release(rid, reserved.key, BUILD).code == Code.NOT_HELD
    fields = line_of(agent, rid, "lock")
    assert "holder_id" not in fields and fields["holder_url"] == BUILD
    assert [e["action"] for e in history_of(agent, rid)] == ["release", "lock", "reserve"]

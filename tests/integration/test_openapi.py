"""The OpenAPI document: valid, complete, and true of the running server.

Complete: every route the app registers is documented and nothing else is.
True: real answers of a running agent -- successes, refusals, errors, JSON-RPC
-- have a documented status and content type and match the documented schema
(closed objects, so an undocumented field fails).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from agent.api.access import READS, RULES, Access
from agent.api.allow import Allowlist
from agent.api.app import make_app
from agent.api.openapi import DOCUMENT
from agent.api.tokens import Tokens
from agent.model import Code
from tests.agentproc import AgentProcess
from tests.support.core import core_harness
from tests.support.openapi import METHODS, check


def test_document_is_valid_openapi() -> None:
    validate(DOCUMENT)


@pytest.fixture
async def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, path) of every route the real app registers (HEAD comes with GET)."""
    async with core_harness(tmp_path) as core:
        access = Access(Tokens(), Allowlist([]))
        app = make_app(core.authority, "resource-agent://test", access=access)
        return {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }


def test_every_route_is_documented_and_nothing_else(app_routes: set[tuple[str, str]]) -> None:
    documented = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in METHODS
    }
    assert app_routes - documented == set(), "registered but not documented"
    assert documented - app_routes == set(), "documented but not registered"


def test_every_change_route_has_a_rule_of_its_own(app_routes: set[tuple[str, str]]) -> None:
    # Without one a change is an administrator's (agent/api/access.py); with one, the rule
    # was thought about, and the audit trail names its action.
    changes = {(m, path) for m, path in app_routes if m not in READS}
    assert changes - set(RULES) == set()
    documented = {path for path, item in DOCUMENT["paths"].items() if "post" in item}
    for method, path in changes:
        security = DOCUMENT["paths"][path][method.lower()]["security"]
        assert security in ([{}], [{"bearerToken": []}, {}]), path
    assert documented == {path for _, path in changes}
    assert "bearerToken" in DOCUMENT["components"]["securitySchemes"]


def test_served_document_is_the_document(pool_agent: AgentProcess) -> None:
    resp = pool_agent.request("GET", "/api/openapi.json")
    assert check("/api/openapi.json", "GET", resp) == json.loads(json.dumps(DOCUMENT))


def test_read_routes_match_the_schemas(pool_agent: AgentProcess, rid: str) -> None:
    check("/api/health", "GET", pool_agent.request("GET", "/api/health"))
    check("/api/coordinators", "GET", pool_agent.request("GET", "/api/coordinators"))
    check("/api/resources", "GET", pool_agent.request("GET", "/api/resources"))
    one = "/api/resources/{id}"
    check(one, "GET", pool_agent.request("GET", f"/api/resources/{rid}"))
    check(one, "GET", pool_agent.request("GET", "/api/resources/nope"))
    history = "/api/resources/{id}/history"
    check(history, "GET", pool_agent.request("GET", f"/api/resources/{rid}/history"))
    check(history, "GET", pool_agent.request("GET", f"/api/resources/{rid}/history?limit=0"))
    check(history, "GET", pool_agent.request("GET", "/api/resources/nope/history"))


def action(agent: AgentProcess, rid: str, name: str, body: Any = None) -> Any:
    path = "/api/resources/{id}/" + name
    return check(path, "POST", agent.request("POST", f"/api/resources/{rid}/{name}", body))


def test_hold_routes_match_the_schemas(pool_agent: AgentProcess, rid: str) -> None:
    key = action(pool_agent, rid, "reserve", {"timeout": 60, "holder": "me"})["hold"]["key"]
    action(pool_agent, rid, "reserve", {"timeout": 60, "holder": "you"})  # 409
    action(pool_agent, rid, "lock", {"key": "wrong"})  # 403
    held = action(pool_agent, rid, "lock", {"key": key, "lease": 60})
    assert held["hold"]["key"] == key and held["resource"]["holder"]["kind"] == "locked"
    action(pool_agent, rid, "renew", {"key": key, "lease": 120})
    action(pool_agent, rid, "renew", {"key": key, "lease": "long"})  # 422
    check(
        "/api/resources/{id}/history",
        "GET",
        pool_agent.request("GET", f"/api/resources/{rid}/history"),
    )
    action(pool_agent, rid, "release", {"key": key})
    action(pool_agent, rid, "release", {"key": key})  # 409 not held
    action(pool_agent, rid, "lock", {})
    action(pool_agent, rid, "release", {"force": True})
    action(pool_agent, rid, "disable", {"reason": "flaky"})
    action(pool_agent, rid, "enable")
    action(pool_agent, "nope", "enable")  # 404
    action(pool_agent, rid, "release", b"[1,")  # 400
    action(pool_agent, rid, "reserve", b"[]")  # 400
    action(pool_agent, rid, "disable", {"reason": "x" * 70_000})  # 413


def test_jsonrpc_answers_match_the_schemas(pool_agent: AgentProcess, rid: str) -> None:
    request = {
        "jsonrpc": "2.0",
        "method": "ResourceMonitor.Resources.Reserve",
        "params": {"resource": rid, "timeout": 3, "clientInfo": {"id": "j", "url": "u"}},
        "id": "183729",
    }
    ok = check("/", "POST", pool_agent.request("POST", "/", request))
    assert ok["result"]["status"] == "OK"
    other = {**request["params"], "clientInfo": {"id": "j", "url": "other"}}  # type: ignore[dict-item]
    no = check("/", "POST", pool_agent.request("POST", "/", request | {"id": 5, "params": other}))
    assert no["result"]["status"] == "NO"
    bad = check("/", "POST", pool_agent.request("POST", "/", request | {"method": "x"}))
    assert bad["error"]["code"] == -32601
    check("/", "POST", pool_agent.request("POST", "/", b"{"))
    batch = check("/", "POST", pool_agent.request("POST", "/", [request, request | {"id": None}]))
    assert len(batch) == 2
    del request["id"]
    check("/", "POST", pool_agent.request("POST", "/", request))  # 204
    check("/", "POST", pool_agent.request("POST", "/", b" " * 70_000))  # 413


def test_docs_cover_every_code_and_route() -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    for code in Code:
        assert f"| {int(code)} | `{code.name}` |" in text, f"docs/api.md lacks code {code.name}"
    for path, item in DOCUMENT["paths"].items():
        for method in item:
            if path != "/":
                assert f"{method.upper()} {path}" in text, f"docs/api.md lacks {method} {path}"
    for number in (-32700, -32600, -32601, -32602, -32603):
        assert f"| {number} |" in text

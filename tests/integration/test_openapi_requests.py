"""The request schemas in the OpenAPI document say exactly what the running server accepts.

For every body the document describes, cases are made from the schema itself:
each property set to a value of every JSON type (and out-of-range numbers),
an unknown property, the required ones left out. Each case is judged by the
document (JSON Schema 2020-12) and sent to a real agent: a body the document
accepts must never be refused as invalid (HTTP 422 / JSON-RPC -32602), and a
body it rejects must be.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.api.openapi import DOCUMENT
from agent.api.paths import JSONRPC_METHODS
from tests.agentproc import AgentProcess
from tests.support.openapi import validator

SCHEMAS = DOCUMENT["components"]["schemas"]
VALUES: list[Any] = [None, "text", "", 60, 2.5, 0, -1, 10**9, True, False, [], {}, {"id": "x"}]


def cases(schema_name: str, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``base``, each property of the schema set to each value, an unknown one, one left out."""
    yield dict(base)
    for name in SCHEMAS[schema_name]["properties"]:
        for value in VALUES:
            yield {**base, name: value}
        if name in base:
            yield {k: v for k, v in base.items() if k != name}
    yield {**base, "unknown": 1}


def request_body_schema(path: str) -> str:
    content = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]
    ref: str = next(iter(content.values()))["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def rest_bases(rid: str) -> dict[str, dict[str, Any]]:
    """A valid body for every POST with a body, by documented path."""
    return {
        "/api/resources/{id}/reserve": {"timeout": 60},
        "/api/resources/{id}/lock": {"lease": 60},
        "/api/resources/{id}/release": {"key": "k"},
        "/api/resources/{id}/renew": {"key": "k"},
        "/api/resources/{id}/enable": {},
        "/api/resources/{id}/disable": {"reason": "r"},
        "/api/resources/{id}/recover": {"reason": "r"},  # a static resource: not tried
        "/api/resources/{id}/forget": {},
        # Nothing matches the selector, so no case takes another test's resource.
        "/api/acquire": {"select": {"nope": "x"}, "resource": rid, "lease": 5},
    }


def test_every_rest_body_is_covered() -> None:
    bodies = {
        path
        for path, item in DOCUMENT["paths"].items()
        if path.startswith("/api/") and "requestBody" in item.get("post", {})
    }
    assert bodies == set(rest_bases("r"))


@pytest.mark.parametrize("path", sorted(rest_bases("r")))
def test_rest_accepts_exactly_what_the_document_says(
    pool_agent: AgentProcess, rid: str, path: str
) -> None:
    name = request_body_schema(path)
    judge = validator("components", "schemas", name)
    seen: set[bool] = set()
    for body in cases(name, rest_bases(rid)[path]):
        valid = judge.is_valid(body)
        resp = pool_agent.request("POST", path.replace("{id}", rid), body)
        invalid_answer = resp.status == 422
        assert valid != invalid_answer, (
            f"{path} {body}: the document says {'valid' if valid else 'invalid'}, "
            f"the server answered {resp.status} {resp.body[:200]!r}"
        )
        # Whatever the state says (404, 409, 403...), it is never a server error.
        assert resp.status < 500, (body, resp.status)
        seen.add(valid)
    assert seen == {True, False}, "the cases must hold both accepted and refused bodies"


@pytest.mark.parametrize("path", sorted(rest_bases("r")))
def test_a_body_may_be_left_out_exactly_where_the_document_says(
    pool_agent: AgentProcess, rid: str, path: str
) -> None:
    # Found by schemathesis: acquire takes no body as {}, but the document required one.
    required = DOCUMENT["paths"][path]["post"]["requestBody"]["required"]
    resp = pool_agent.request("POST", path.replace("{id}", rid))
    assert (resp.status == 422) is required, (path, resp.status, resp.body[:200])
    assert resp.status < 500, (path, resp.status)
    if path == "/api/acquire" and resp.status == 200:  # it took some resource: give it back
        taken = resp.json()
        key = taken["hold"]["key"]
        released = pool_agent.post(
            f"/api/resources/{taken['resource']['id']}/release", {"key": key}
        )
        assert released.status == 200, released.body


JSONRPC_BASES: dict[str, dict[str, Any]] = {
    "ResourceMonitor.Resources.Reserve": {"timeout": 3, "clientInfo": {"id": "j", "url": "u"}},
    "ResourceMonitor.Resources.Lock": {"key": "k", "clientInfo": {"id": "j", "url": "u"}},
    "ResourceMonitor.Resources.Release": {"key": "k", "clientInfo": {"id": "j", "url": "u"}},
}


def params_schema(method: str) -> str:
    return {
        "ResourceMonitor.Resources.Reserve": "ReserveParams",
        "ResourceMonitor.Resources.Lock": "LockParams",
        "ResourceMonitor.Resources.Release": "ReleaseParams",
    }[method]


def test_every_jsonrpc_method_is_covered() -> None:
    assert set(JSONRPC_BASES) == set(JSONRPC_METHODS)
    for method in JSONRPC_METHODS:
        assert params_schema(method) in SCHEMAS


@pytest.mark.parametrize("method", sorted(JSONRPC_BASES))
def test_jsonrpc_accepts_exactly_what_the_document_says(
    pool_agent: AgentProcess, rid: str, method: str
) -> None:
    name = params_schema(method)
    judge = validator("components", "schemas", name)
    seen: set[bool] = set()
    for params in cases(name, {"resource": rid, **JSONRPC_BASES[method]}):
        valid = judge.is_valid(params)
        seen.add(valid)
        request = {"jsonrpc": "2.0", "method": method, "params": params, "id": "1"}
        answer = pool_agent.request("POST", "/", request).json()
        invalid_answer = answer.get("error", {}).get("code") == -32602
        assert valid != invalid_answer, (
            f"{method} {params}: the document says {'valid' if valid else 'invalid'}, "
            f"the server answered {answer}"
        )
    assert seen == {True, False}

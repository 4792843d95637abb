"""Hypothesis strategies for hostile JSON-RPC, and what every answer to them must be.

``bodies`` makes request bodies of every kind: random bytes, random JSON,
and JSON-RPC requests that are nearly right (a real method and resource with
one thing wrong, wrapped or not, in batches, as notifications). ``exchange``
sends one to an agent and checks the answer the way Jenkins' client and the
OpenAPI document would: never a 5xx, HTTP 200 with a JSON-RPC envelope
(204 when only notifications came), an ``error`` only with one of the
documented codes and never the internal error, a ``result`` of exactly the
seven fields. A request that was not answered OK must have changed nothing:
``GET /api/resources`` is the same before and after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.agentproc import Response, http_request
from tests.fakes.jsonrpc4j import check_result
from tests.support.openapi import check

METHODS = (
    "ResourceMonitor.Resources.Reserve",
    "ResourceMonitor.Resources.Lock",
    "ResourceMonitor.Resources.Release",
)
ERROR_CODES = frozenset({-32700, -32600, -32601, -32602})  # never -32603: that is a crash
RESOURCES = ("fz-1", "fz-2", "fz-3")

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# Numbers Python's json writes that JSON does not have.
_odd_numbers = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e400, -0.0])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """One JSON-RPC request as Jenkins sends it, then up to three things in it made wrong."""
    info = {"id": "http://fuzz-jenkins/", "url": "job/fuzz/1/"}
    params: dict[str, Any] = {
        "resource": draw(st.sampled_from(RESOURCES)),
        "timeout": draw(st.integers(1, 600)),
        "key": draw(st.none() | st.text(max_size=30)),
        "clientInfo": info,
    }
    request: dict[str, Any] = {
        "jsonrpc": "2.0",
        "method": draw(st.sampled_from(METHODS)),
        "params": draw(st.sampled_from([params, [params]])),
        "id": draw(st.text(max_size=12) | st.integers()),
    }
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from([request, params, info]))
        names = st.sampled_from(sorted(target)) if target else st.nothing()
        key = draw(names | st.text(max_size=8))
        if key in target and draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values | _odd_numbers)
    return request


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(_dumps),
    requests().map(_dumps),
    st.lists(requests() | json_values, max_size=5).map(_dumps),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@dataclass
class Tally:
    """What a fuzzing run saw."""

    cases: int = 0
    ok: int = 0  # answered OK (a legitimate change, undone at once)


def _snapshot(url: str) -> Any:
    resp = http_request(url, "GET", "/api/resources")
    assert resp.status == 200, resp
    return resp.json()


def _answers(resp: Response) -> list[Any]:
    check("/", "POST", resp)
    if resp.status == 204:
        return []
    body = resp.json()
    return body if isinstance(body, list) else [body]


def exchange(url: str, body: bytes, tally: Tally) -> None:
    """Send ``body`` as JSON-RPC; check the answer; undo an OK; nothing else may change.

    A notification's change is undone too: it is carried out, and nobody hears of it.
    """
    before = _snapshot(url)
    resp = http_request(url, "POST", "/", body, headers={"Content-Type": "application/json-rpc"})
    tally.cases += 1
    assert resp.status in (200, 204), (resp.status, resp.body[:300], body[:300])
    changed = False
    for answer in _answers(resp):
        assert answer.get("jsonrpc") == "2.0", answer
        if "error" in answer:
            assert answer["error"]["code"] in ERROR_CODES, (answer, body[:300])
            continue
        result = check_result(answer["result"])
        if result.ok:
            changed = True
    if changed:
        tally.ok += 1
    if changed or _notifies(body):
        # A notification is carried out, unanswered (docs/api.md): its change is allowed.
        _undo(url, before)
    after = _snapshot(url)
    assert after == before, f"{body[:300]!r} changed the state: {before} -> {after}"


def _notifies(body: bytes) -> bool:
    """Whether the body holds a request object without an id (a notification)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    items = payload if isinstance(payload, list) else [payload]
    return any(isinstance(item, dict) and "id" not in item for item in items)


def _undo(url: str, before: Any) -> None:
    """Release every hold that ``before`` did not have (keys from the agent's own REST)."""
    had = {r["id"] for r in before["resources"] if r["holder"] is not None}
    for res in _snapshot(url)["resources"]:
        if res["holder"] is not None and res["id"] not in had:
            path = f"/api/resources/{res['id']}/release"
            forced = http_request(url, "POST", path, {"force": True})
            assert forced.status == 200, forced.body

"""Schemathesis hooks for fuzzing the running agent (loaded through SCHEMATHESIS_HOOKS).

- JSON-RPC's ``application/json-rpc`` bodies are serialised as JSON.
- ``refused_changes_nothing``: every POST is preceded by a look at
  ``GET /api/resources``; when the answer refuses the request (HTTP 4xx, or a
  JSON-RPC error or NO), the resources must look exactly as before, but for a
  hold an earlier case took whose deadline came meanwhile.
- ``acquire`` waits in line at most MAX_WAIT seconds.

The agent's URL comes from ``FUZZ_AGENT_URL``.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

import schemathesis

from tests.agentproc import http_request

schemathesis.serializer.alias("application/json-rpc", "application/json")

_BEFORE: dict[str, Any] = {}
MAX_WAIT = 0.5


def _resources() -> Any:
    resp = http_request(os.environ["FUZZ_AGENT_URL"], "GET", "/api/resources")
    assert resp.status == 200, resp
    return resp.json()


def _refused(path: str, status: int, body: Any) -> bool:
    if status >= 400:
        return True
    if path != "/" or status != 200:
        return False
    answers = body if isinstance(body, list) else [body]
    return all(
        not isinstance(a, dict) or "error" in a or a.get("result", {}).get("status") != "OK"
        for a in answers
    )


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    """Look at the resources before every change; wait in line a moment at most."""
    if case.method.upper() != "POST":
        return
    _BEFORE[case.id] = _resources()
    body: Any = case.body
    # acquire waits in line up to ``wait`` seconds, as asked (hours for `run --timeout`):
    # here nobody gives the resources back, so a long wait would only hold up the run.
    wait = body.get("wait") if isinstance(body, dict) else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > MAX_WAIT:
        body["wait"] = MAX_WAIT


@schemathesis.check
def refused_changes_nothing(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A refused request left every resource as it was."""
    before = _BEFORE.pop(case.id, None)
    if before is None:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not _refused(case.operation.path, response.status_code, body):
        return None
    after = _resources()
    if after != before and not _expired_meanwhile(before, after, time.time()):
        changed = sorted(
            r["id"] for r in after["resources"] if r not in before["resources"]
        )  # fmt: skip
        raise AssertionError(
            f"refused with {response.status_code}, yet the resources changed: {changed}"
        )
    return True


def _expired_meanwhile(before: Any, after: Any, now: float) -> bool:
    """Every difference is a hold whose deadline had come by ``now`` and is gone: the
    agent's timer ended it between the two looks (an earlier case took it), not the
    refused request."""
    old = {r["id"]: r for r in before["resources"]}
    new = {r["id"]: r for r in after["resources"]}
    if old.keys() != new.keys():
        return False
    for rid, res in old.items():
        if res == new[rid]:
            continue
        hold, now_held = res["holder"], new[rid]["holder"]
        if hold is None or hold["expires"] is None or now_held is not None:
            return False
        if datetime.fromisoformat(hold["expires"]).timestamp() > now + 1:  # shown in seconds
            return False
        if {k: v for k, v in res.items() if k not in ("holder", "state")} != {
            k: v for k, v in new[rid].items() if k not in ("holder", "state")
        }:
            return False
    return True

"""``POST /``: the ResourceMonitor JSON-RPC 2.0 endpoint Jenkins calls.

Exactly as the dispatcher plugin expects (see docs/api.md): methods
``ResourceMonitor.Resources.Reserve|Lock|Release``; params as an object or a
one-element array holding it; every understood call answers HTTP 200 with a
``result`` of exactly seven fields -- refusals included, as ``status: "NO"``.
JSON-RPC ``error`` objects are kept for requests that are malformed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent import audit
from agent.actions import CALLER
from agent.api.metrics import refused
from agent.api.wire import AUTHORITY, LOCKER, BadJSON, encode, parse_json
from agent.model import Action, Code, Hold, Holder, Refused, zoned

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class _Params(BaseModel):
    # Jackson may add fields we do not use; types are checked strictly.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class ClientInfo(_Params):
    """Who asks: ``id`` the Jenkins root URL, ``url`` the task or build.

    A Jenkins whose root URL is not configured leaves ``id`` out (json-lib drops
    the null), and its queue dispatcher fails on anything but a normal answer:
    the holder's system is then unknown (empty), and the call is answered.
    """

    id: str | None = None
    url: str | None = None

    def holder(self) -> Holder:
        """As the registry keeps it (a missing id or url is empty)."""
        return Holder(self.id or "", self.url or "")


class ReserveParams(_Params):
    """``Reserve``: the resource, for how many seconds, and for whom."""

    resource: str
    timeout: float
    clientInfo: ClientInfo


class LockParams(_Params):
    """``Lock``: the resource, its reservation's key, and who locks it."""

    resource: str
    key: str | None = None
    clientInfo: ClientInfo


class ReleaseParams(_Params):
    """``Release``: the resource and the key of its hold."""

    resource: str
    # Required, but null is a refusal (Jenkins lost the key), like Lock's.
    key: str | None
    clientInfo: ClientInfo | None = None


class MonitorResult(BaseModel):
    """Exactly these seven fields: Jenkins' Jackson mapper fails on any other."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["OK", "NO"]
    code: int = Field(description="0 for OK, else the refusal code (docs/api.md).")
    message: str
    key: str | None
    time: int = Field(
        description="Deadline (reservation or lease) in ms since the epoch; "
        "the time of the answer when there is none."
    )
    timezone: int = Field(description="The agent's UTC offset in seconds.")
    isotime: str = Field(
        json_schema_extra={"format": "date-time"},
        description="`time` as ISO 8601 with offset, to the second.",
    )


def _result(code: Code, message: str, key: str | None, when: float) -> dict[str, Any]:
    """A ``MonitorResult``, as the JSON object it is sent as (built as one: no model per call)."""
    millis = int(when * 1000)
    # isotime and timezone come from the whole second of ``time`` itself: from
    # the float, isotime rounds to microseconds and could name the next second.
    timezone, iso = zoned(millis // 1000)
    return {
        "status": "OK" if code is Code.OK else "NO",
        "code": int(code),
        "message": message,
        "key": key,
        "time": millis,
        "timezone": timezone,
        "isotime": iso,
    }


def _hold_result(app: web.Application, hold: Hold, message: str) -> dict[str, Any]:
    # The deadline runs on the agent's steady clock; Jenkins is told its wall-clock time.
    when = time.time() if hold.expires is None else app[AUTHORITY].wall(hold.expires)
    return _result(Code.OK, message, hold.key, when)


async def _reserve(app: web.Application, p: ReserveParams) -> dict[str, Any]:
    hold = await app[AUTHORITY].reserve(p.resource, p.timeout, p.clientInfo.holder())
    return _hold_result(app, hold, f"reserved {p.resource}")


async def _lock(app: web.Application, p: LockParams) -> dict[str, Any]:
    # Through the gate: the answer waits for provisioning up to the session's lock_wait.
    hold = await app[LOCKER].lock(p.resource, p.key, p.clientInfo.holder(), reserved_first=True)
    return _hold_result(app, hold, f"locked {p.resource}")


async def _release(app: web.Application, p: ReleaseParams) -> dict[str, Any]:
    hold = await app[AUTHORITY].release(p.resource, p.key)
    return _result(Code.OK, f"released {p.resource}", hold.key, time.time())


Handler = Callable[[web.Application, Any], Awaitable[dict[str, Any]]]
METHODS: dict[str, tuple[type[_Params], Handler]] = {
    "ResourceMonitor.Resources.Reserve": (ReserveParams, _reserve),
    "ResourceMonitor.Resources.Lock": (LockParams, _lock),
    "ResourceMonitor.Resources.Release": (ReleaseParams, _release),
}
# What a refused call is in the audit trail.
ACTIONS = dict(zip(METHODS, (Action.RESERVE, Action.LOCK, Action.RELEASE), strict=True))


def _error(id_: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": id_}


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"params.{loc}: {err['msg']}" if loc else f"params: {err['msg']}"


async def _call(app: web.Application, request: Any) -> dict[str, Any] | None:
    """Answer one request object; None for a notification.

    A valid notification is never answered, not even with an error (JSON-RPC
    2.0 section 4.1); an invalid request object always is.
    """
    if not isinstance(request, dict):
        return _error(None, INVALID_REQUEST, "Invalid Request", "a request must be a JSON object")
    has_id = "id" in request
    id_ = request.get("id")
    if isinstance(id_, (dict, list, bool)):
        return _error(None, INVALID_REQUEST, "Invalid Request", "id must be a string or number")
    method = request.get("method")
    if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return _error(
            id_, INVALID_REQUEST, "Invalid Request", 'needs "jsonrpc": "2.0" and a string "method"'
        )
    answer = await _dispatch(app, method, request.get("params"), id_)
    return answer if has_id else None


async def _dispatch(app: web.Application, method: str, params: Any, id_: Any) -> dict[str, Any]:
    """Run a well-formed request: its result, or the error saying why not."""
    entry = METHODS.get(method)
    if entry is None:
        return _error(id_, METHOD_NOT_FOUND, "Method not found", f"no method {method!r}")
    # jsonrpc4j wraps the one argument in an array for some methods and builds.
    if isinstance(params, list) and len(params) == 1:
        params = params[0]
    if not isinstance(params, dict):
        return _error(id_, INVALID_PARAMS, "Invalid params", "params must be an object or [object]")
    model, handler = entry
    try:
        parsed = model.model_validate(params)
    except ValidationError as exc:
        return _error(id_, INVALID_PARAMS, "Invalid params", _describe(exc))
    try:
        result = await handler(app, parsed)
    except Refused as refusal:
        assert isinstance(parsed, ReserveParams | LockParams | ReleaseParams)
        info = parsed.clientInfo
        holder = info.holder() if info else None
        audit.refused(ACTIONS[method], parsed.resource, holder=holder, caller=CALLER.get(),
                      code=refusal.code, reason=refusal.message)  # fmt: skip
        if handler is not _release:
            refused(app, method.rsplit(".", 1)[-1].lower(), refusal.code)
        result = _result(refusal.code, refusal.message, None, time.time())
    except Exception:
        log.exception("JSON-RPC %s failed", method)
        return _error(id_, INTERNAL_ERROR, "Internal error")
    return {"jsonrpc": "2.0", "result": result, "id": id_}


async def answer(app: web.Application, raw: bytes) -> bytes | None:
    """The encoded answer to one request body (a call or a batch); None: answer 204."""
    try:
        payload = parse_json(raw)
    except BadJSON as exc:
        return encode(_error(None, PARSE_ERROR, "Parse error", str(exc)))
    if isinstance(payload, list):
        if not payload:
            return encode(_error(None, INVALID_REQUEST, "Invalid Request", "empty batch"))
        answers = [a for r in payload if (a := await _call(app, r)) is not None]
        return encode(answers) if answers else None
    single = await _call(app, payload)
    return encode(single) if single is not None else None


async def handle(request: web.Request) -> web.Response:
    """``POST /`` in aiohttp (agent/api/express.py takes Jenkins' usual calls before it)."""
    body = await answer(request.app, await request.read())
    if body is None:
        return web.Response(status=204)
    return web.Response(body=body, content_type="application/json-rpc", charset="utf-8")

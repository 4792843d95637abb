"""``/api/``: the REST API for people and scripts (described in openapi.py).

Handlers only translate: JSON bodies in, registry commands through the
authority, JSON out. Keys are shown only to whoever took the hold, never in
listings: a key is the capability to release someone's lock.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent.api.bodies import (
    Body,
    DisableBody,
    EmptyBody,
    LockBody,
    ReleaseBody,
    RenewBody,
    ReserveBody,
)
from agent.api.rendered import RENDERED
from agent.api.schemas import (
    ActionOut,
    CoordinatorOut,
    Coordinators,
    Error,
    ErrorDetail,
    History,
    HistoryEntryOut,
    HoldAnswer,
    HoldOut,
    HoldWithKey,
    ReleaseAnswer,
    ResourceOut,
)
from agent.api.wire import (
    AUTHORITY,
    COORDINATORS,
    IDENTITY,
    LOCKER,
    SESSIONS,
    BadJSON,
    parse_json,
)
from agent.model import Code, Hold, Holder, Refused

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

# Refusal codes to HTTP statuses; request problems have their own below.
STATUS = {
    Code.UNKNOWN_RESOURCE: 404,
    Code.WRONG_KEY: 403,
    Code.INVALID_ARGUMENT: 422,
    Code.MALFORMED_REQUEST: 400,
    Code.TOO_LARGE: 413,
    Code.NOT_FOUND: 404,
    Code.INTERNAL: 500,
    Code.NOT_SAVED: 503,  # the disk, not the resource's state: try again later
    Code.SAVE_UNCERTAIN: 503,
}
CONFLICT = 409  # every other refusal: the resource's state says no


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}``."""

    def __init__(self, code: Code, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def answer(model: BaseModel, status: int = 200) -> web.Response:
    """An answer model as the JSON body."""
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def error_response(code: Code, message: str, status: int | None = None) -> web.Response:
    """The JSON error body every /api/ error uses; the status follows from the code."""
    body = Error.model_construct(error=ErrorDetail.model_construct(code=int(code), message=message))
    return answer(body, status or STATUS.get(code, CONFLICT))


B = TypeVar("B", bound=Body)


async def read_body(request: web.Request, model: type[B]) -> B:
    raw = await request.read()
    try:
        data = parse_json(raw) if raw.strip() else {}
    except BadJSON as exc:
        raise ApiError(Code.MALFORMED_REQUEST, str(exc)) from exc
    if not isinstance(data, dict):
        raise ApiError(Code.MALFORMED_REQUEST, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        msg = msg.removeprefix("Value error, ")  # a rule across fields names its own field
        raise ApiError(Code.INVALID_ARGUMENT, f"{field}: {msg}" if field else msg) from exc


def holder_of(request: web.Request, who: str | None) -> Holder:
    return Holder(request.app[IDENTITY], who or f"api@{request.remote or 'unknown'}")


def hold_answer(request: web.Request, resource_id: str, hold: Hold) -> web.Response:
    """A hold taken or renewed, with the session that prepares it (if any)."""
    authority = request.app[AUTHORITY]
    res = authority.registry.get(resource_id)
    sessions = request.app.get(SESSIONS)
    session = sessions.session_of(resource_id, hold.key) if sessions is not None else None
    wall = authority.wall
    return answer(
        HoldAnswer.model_construct(
            resource=ResourceOut.of(res, wall), hold=HoldWithKey.of(hold, wall), session=session
        )
    )


def _hold_answer(request: web.Request, hold: Hold) -> web.Response:
    return hold_answer(request, request.match_info["id"], hold)


@routes.get("/api/coordinators")
async def coordinators(request: web.Request) -> web.Response:
    """Each coordinator's sync: state, pending changes, last success and last error."""
    source = request.app.get(COORDINATORS)
    statuses = source.status() if source is not None else []
    return answer(
        Coordinators.model_construct(coordinators=[CoordinatorOut.of(s) for s in statuses])
    )


@routes.get("/api/resources")
async def list_resources(request: web.Request) -> web.Response:
    """Every resource."""
    authority = request.app[AUTHORITY]
    body = request.app[RENDERED].resources(authority.registry.resources(), authority.wall)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


@routes.get("/api/resources/{id}")
async def show_resource(request: web.Request) -> web.Response:
    """One resource."""
    authority = request.app[AUTHORITY]
    return answer(ResourceOut.of(authority.registry.get(request.match_info["id"]), authority.wall))


@routes.get("/api/resources/{id}/history")
async def history(request: web.Request) -> web.Response:
    """Who held the resource, when, and how it ended; and every change: newest first."""
    raw = request.query.get("limit", "100")
    # isascii: str.isdigit() also takes digits like "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 10000:
        raise ApiError(Code.INVALID_ARGUMENT, "limit: must be a whole number from 1 to 10000")
    authority, rid, limit = request.app[AUTHORITY], request.match_info["id"], int(raw)
    entries = await authority.history(rid, limit)
    actions = await authority.actions(rid, limit)
    return answer(
        History.model_construct(
            history=[HistoryEntryOut.of(e, authority.wall) for e in entries],
            actions=[ActionOut.of(a, authority.wall) for a in actions],
        )
    )


@routes.post("/api/resources/{id}/reserve")
async def reserve(request: web.Request) -> web.Response:
    """Reserve for ``timeout`` seconds."""
    body = await read_body(request, ReserveBody)
    hold = await request.app[AUTHORITY].reserve(
        request.match_info["id"], body.timeout, holder_of(request, body.holder)
    )
    return _hold_answer(request, hold)


@routes.post("/api/resources/{id}/lock")
async def lock(request: web.Request) -> web.Response:
    """Lock a reservation (with its key) or a free resource (without)."""
    body = await read_body(request, LockBody)
    hold = await request.app[LOCKER].lock(
        request.match_info["id"],
        body.key,
        holder_of(request, body.holder),
        body.lease,
        wait=body.wait,
    )
    return _hold_answer(request, hold)


@routes.post("/api/resources/{id}/release")
async def release(request: web.Request) -> web.Response:
    """Release with the key, or any hold with ``force``."""
    body = await read_body(request, ReleaseBody)
    registry = request.app[AUTHORITY].registry
    before = registry.get(request.match_info["id"])
    hold = await request.app[AUTHORITY].release(request.match_info["id"], body.key, body.force)
    # A retired resource is removed with its last hold: answered as it was left.
    res = registry.find(before.id) or replace(before, hold=None)
    wall = request.app[AUTHORITY].wall
    return answer(
        ReleaseAnswer.model_construct(
            resource=ResourceOut.of(res, wall), released=HoldOut.of(hold, wall)
        )
    )


@routes.post("/api/resources/{id}/renew")
async def renew(request: web.Request) -> web.Response:
    """Push a hold's deadline: by ``lease`` seconds, or by its own length."""
    body = await read_body(request, RenewBody)
    hold = await request.app[AUTHORITY].renew(request.match_info["id"], body.key, body.lease)
    return _hold_answer(request, hold)


@routes.post("/api/resources/{id}/enable")
async def enable(request: web.Request) -> web.Response:
    """Let the resource take new holds."""
    await read_body(request, EmptyBody)
    authority = request.app[AUTHORITY]
    return answer(ResourceOut.of(await authority.enable(request.match_info["id"]), authority.wall))


@routes.post("/api/resources/{id}/disable")
async def disable(request: web.Request) -> web.Response:
    """Refuse new holds; an existing one stays."""
    body = await read_body(request, DisableBody)
    authority = request.app[AUTHORITY]
    res = await authority.disable(request.match_info["id"], body.reason)
    return answer(ResourceOut.of(res, authority.wall))


@routes.post("/api/resources/{id}/forget")
async def forget(request: web.Request) -> web.Response:
    """Drop an absent resource for good (an administrator's word: it is not coming back)."""
    await read_body(request, EmptyBody)
    authority = request.app[AUTHORITY]
    return answer(ResourceOut.of(await authority.forget(request.match_info["id"]), authority.wall))


def too_large() -> web.Response:
    """The answer to a body over the limit, whatever the path."""
    return error_response(Code.TOO_LARGE, "the request body is larger than 64 KiB")


def hung_up(request: web.Request) -> web.Response:
    """The client hung up before its body arrived: nobody is left to answer."""
    log.debug("%s %s: the client hung up", request.method, request.path)
    return web.Response(status=400, text="connection lost")


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn refusals and HTTP errors under /api/ into the JSON error body."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except Refused as refusal:
        return error_response(refusal.code, refusal.message)
    except ApiError as err:
        return error_response(err.code, err.message, err.status)
    except web.HTTPRequestEntityTooLarge:
        return too_large()
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        code = Code.NOT_FOUND if exc.status in (404, 405) else Code.MALFORMED_REQUEST
        resp = error_response(code, f"{exc.reason}: {request.method} {request.path}", exc.status)
        if "Allow" in exc.headers:  # a 405 says which methods would do (RFC 9110)
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except ConnectionResetError:
        return hung_up(request)
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        # A bug, not the client's fault: say so in the API's own shape, keep serving.
        log.exception("%s %s failed", request.method, request.path)
        return error_response(Code.INTERNAL, "internal error; see the agent's log")

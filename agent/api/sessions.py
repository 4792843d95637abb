"""``/api/sessions``: every session's record and log; ``/api/acquire``: a lock in turn.

A session's log is plain text, one line per step start, output line and step
end. ``?follow=1`` streams it (chunked) while the session runs and ends when
the phase it was in ends -- what ``resource-agent session wait`` prints into
a Jenkins build log.
"""

from __future__ import annotations

from aiohttp import web

from agent.api.bodies import AcquireBody
from agent.api.rest import ApiError, answer, hold_answer, holder_of, read_body
from agent.api.schemas import SessionList, SessionOut
from agent.api.wire import LOCKER, SESSIONS, WAITLIST
from agent.model import Code
from agent.sessions.journal import Journal

routes = web.RouteTableDef()

MAX_LIMIT = 500


def _journal(request: web.Request) -> Journal:
    sessions = request.app.get(SESSIONS)
    if sessions is None:
        raise ApiError(Code.NOT_FOUND, "this agent runs no sessions", 404)
    return sessions.journal


@routes.get("/api/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    """Sessions, newest first; ``resource`` and ``holder`` narrow them down."""
    raw = request.query.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(
            Code.INVALID_ARGUMENT, f"limit: must be a whole number from 1 to {MAX_LIMIT}"
        )
    found = await _journal(request).find(
        resource_id=request.query.get("resource"),
        holder=request.query.get("holder"),
        limit=int(raw),
    )
    return answer(SessionList.model_construct(sessions=[SessionOut.of(r) for r in found]))


@routes.get("/api/sessions/{id}")
async def show_session(request: web.Request) -> web.Response:
    """One session."""
    record = await _journal(request).get(request.match_info["id"])
    if record is None:
        raise ApiError(Code.NOT_FOUND, f"no session {request.match_info['id']!r}", 404)
    return answer(SessionOut.of(record))


@routes.get("/api/sessions/{id}/log")
async def session_log(request: web.Request) -> web.StreamResponse:
    """The session's log as text; ``?follow=1`` streams it until the phase ends."""
    journal = _journal(request)
    sid = request.match_info["id"]
    if await journal.get(sid) is None:
        raise ApiError(Code.NOT_FOUND, f"no session {sid!r}", 404)
    if request.query.get("follow") not in ("1", "true"):
        text = "".join(line + "\n" for line in await journal.lines(sid))
        return web.Response(text=text, content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    async for line in journal.follow(sid):
        await resp.write((line + "\n").encode())
    await resp.write_eof()
    return resp


@routes.post("/api/acquire")
async def acquire(request: web.Request) -> web.Response:
    """Lock a free resource that matches, waiting in line for one up to ``wait`` seconds."""
    body = await read_body(request, AcquireBody)
    holder = holder_of(request, body.holder)
    locker = request.app[LOCKER]

    async def lock(resource_id: str) -> web.Response:
        # wait=0: provisioning runs on; the caller follows the session's log.
        hold = await locker.lock(resource_id, None, holder, body.lease, wait=0)
        return hold_answer(request, resource_id, hold)

    return await request.app[WAITLIST].take(body.select, body.resource, body.wait, lock)

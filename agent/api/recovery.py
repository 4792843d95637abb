"""``POST /api/resources/{id}/recover``: climb a stuck phone's recovery ladder by hand."""

from __future__ import annotations

from aiohttp import web

from agent.api.bodies import RecoverBody
from agent.api.rest import ApiError, answer, read_body
from agent.api.schemas import RecoverAnswer, ResourceOut
from agent.api.wire import AUTHORITY, RECOVERY
from agent.model import Code

routes = web.RouteTableDef()


@routes.post("/api/resources/{id}/recover")
async def recover(request: web.Request) -> web.Response:
    """Try the ladder now (the backoff does not apply); answers when it has ended."""
    body = await read_body(request, RecoverBody)
    ladder = request.app.get(RECOVERY)
    if ladder is None:
        raise ApiError(Code.NOT_FOUND, "this agent recovers no phones", 404)
    rid = request.match_info["id"]
    request.app[AUTHORITY].registry.get(rid)  # an unknown id is a 404 refusal
    recovered = await ladder.recover(rid, body.reason, manual=True)
    authority = request.app[AUTHORITY]
    res = ResourceOut.of(authority.registry.get(rid), authority.wall)
    return answer(RecoverAnswer.model_construct(resource=res, recovered=recovered))

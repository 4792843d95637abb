"""The aiohttp application: JSON-RPC on ``POST /``, REST under ``/api/``."""

from __future__ import annotations

from aiohttp import web

from agent.api import jsonrpc, openapi, rest
from agent.api.wire import AUTHORITY, COORDINATORS, IDENTITY, MAX_BODY, CoordinatorStatus
from agent.authority import Authority


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: the OpenAPI 3 description of this API."""
    return web.json_response(openapi.DOCUMENT)


def make_app(
    authority: Authority, identity: str, coordinators: CoordinatorStatus | None = None
) -> web.Application:
    """Build the application around the authority; ``identity`` names local holders."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[rest.errors])
    app[AUTHORITY] = authority
    app[IDENTITY] = identity
    if coordinators is not None:
        app[COORDINATORS] = coordinators
    app.router.add_post("/", jsonrpc.handle)
    app.router.add_get("/api/openapi.json", openapi_document)
    app.router.add_routes(rest.routes)
    return app

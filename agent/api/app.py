"""The aiohttp application: JSON-RPC on ``POST /``, REST under ``/api/``, behind the guard.

agent/api/limits.py serves it.
"""

from __future__ import annotations

import time

from aiohttp import web

from agent import __version__
from agent.api import front, health, jsonrpc, metrics, openapi, page, rest
from agent.api import recovery as recovery_api
from agent.api import sessions as sessions_api
from agent.api.access import ACCESS, Access, guard
from agent.api.rendered import RENDERED, Rendered
from agent.api.stream import About, EventStream
from agent.api.wire import (
    AUTHORITY,
    COORDINATORS,
    IDENTITY,
    LOCKER,
    MAX_BODY,
    RECOVERY,
    SESSIONS,
    WAITLIST,
    CoordinatorStatus,
    DirectLock,
)
from agent.authority import Authority
from agent.config import short_hostname
from agent.meters import Meters
from agent.recovery.ladder import Recovery
from agent.sessions.manager import Sessions
from agent.waitlist import Waitlist


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: the OpenAPI 3 description of this API."""
    return web.json_response(openapi.DOCUMENT)


def make_app(
    authority: Authority,
    identity: str,
    coordinators: CoordinatorStatus | None = None,
    *,
    sessions: Sessions | None = None,
    waitlist: Waitlist | None = None,
    recovery: Recovery | None = None,
    access: Access,
    adb: health.AdbStatus | None = None,
    meters: Meters | None = None,
    about: About | None = None,
) -> web.Application:
    """Build the application around the authority; ``identity`` names local holders.

    Locks go through ``sessions`` when given (provisioning, the session API),
    straight to the authority otherwise. ``access`` says who may call what;
    health asks ``adb`` (when it is enabled) whether its server answers.
    ``meters`` are what ``/metrics`` shows (a fresh set when not given);
    ``about`` heads the status page.
    """
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[front.jsonrpc_first, metrics.observe, rest.errors, guard, metrics.refusals],
    )
    app[ACCESS] = access
    if adb is not None:
        app[health.ADB] = adb
    app[metrics.METERS] = meters if meters is not None else Meters()
    app[AUTHORITY] = authority
    app[RENDERED] = Rendered()
    app[IDENTITY] = identity
    app[LOCKER] = sessions if sessions is not None else DirectLock(authority)
    if coordinators is not None:
        app[COORDINATORS] = coordinators
    if sessions is not None:
        app[SESSIONS] = sessions
    app[WAITLIST] = (
        waitlist if waitlist is not None else Waitlist(authority.registry, authority.bus)
    )
    stream = EventStream(
        authority,
        about or About(short_hostname(), __version__, time.time()),
        coordinators,
        (lambda res: sessions.rule(res) is not None) if sessions is not None else None,
    )
    app.cleanup_ctx.append(stream.context)
    app.on_shutdown.append(stream.close_clients)
    app.router.add_post("/", jsonrpc.handle)
    app.router.add_get("/", page.index)
    app.router.add_get("/ui/{file}", page.asset)
    app.router.add_get("/api/events", stream.handle)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/api/openapi.json", openapi_document)
    app.router.add_routes(health.routes)
    app.router.add_routes(rest.routes)
    app.router.add_routes(sessions_api.routes)
    app.router.add_routes(recovery_api.routes)
    if recovery is not None:
        app[RECOVERY] = recovery
    return app

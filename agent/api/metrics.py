"""``GET /metrics`` for Prometheus, and the counting the API itself does.

Every request is counted by endpoint -- the route's pattern
(``/api/resources/{id}``), never the raw path, so ids cannot explode the
series -- method and status, with its duration. Refused reserve, lock and
acquire commands are counted by their refusal code, for JSON-RPC and REST
alike.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from agent.meters import CONTENT_TYPE, Meters
from agent.model import Code, Refused

METERS = web.AppKey("meters", Meters)
UNMATCHED = "unmatched"  # requests no route took (404, 405): one series for them all
HOLD_ACTIONS = {"reserve", "lock", "acquire"}


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: every metric, in the Prometheus text format."""
    body = request.app[METERS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def endpoint(request: web.Request) -> str:
    """The route pattern that took the request."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count every request by endpoint, method and status, and time it (the outermost layer)."""
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        count(request, status, started)


def count(request: web.Request, status: int, started: float) -> None:
    """Count a request answered with ``status``, begun at ``started`` (``perf_counter``)."""
    tally(request.app[METERS], endpoint(request), request.method, status, started)


def tally(meters: Meters, where: str, method: str, status: int, started: float) -> None:
    """Count a request to endpoint ``where`` answered with ``status``, begun at ``started``."""
    meters.series(meters.http_requests, where, method, str(status)).inc()
    meters.series(meters.http_seconds, where).observe(time.perf_counter() - started)


def refused(app: web.Application, action: str, code: Code) -> None:
    """A reserve, lock or acquire was refused with ``code``."""
    app[METERS].refused.labels(action, code.name.lower()).inc()


@web.middleware
async def refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count refused REST hold commands (inside the error layer, which answers them)."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except Refused as refusal:
        action = request.path.rsplit("/", 1)[-1]
        if request.method == "POST" and action in HOLD_ACTIONS:
            refused(request.app, action, refusal.code)
        raise

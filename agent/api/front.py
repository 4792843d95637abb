"""The outermost middleware: JSON-RPC (``POST /``) in one layer instead of four.

Jenkins' calls are most of what the agent answers. For them the other layers do
little -- ``errors`` turns nothing of theirs into a JSON error body (that is for
``/api/``), ``refusals`` counts REST commands only -- yet each costs a coroutine
and a call per request. So JSON-RPC is counted and timed as ``metrics.observe``
does, held to its rule by ``access.jsonrpc_gate`` (the same the guard applies),
and a body over the limit or a client that hung up is answered as ``rest.errors``
answers them; every other request goes down the whole chain.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from agent.api import jsonrpc, metrics, rest
from agent.api.access import jsonrpc_gate


@web.middleware
async def jsonrpc_first(request: web.Request, handler: Any) -> web.StreamResponse:
    """``POST /`` straight to the JSON-RPC handler; anything else to ``handler``."""
    if request.match_info.handler is not jsonrpc.handle:
        return await handler(request)  # type: ignore[no-any-return]
    started = time.perf_counter()
    status = 500
    try:
        response = await jsonrpc_gate(request, jsonrpc.handle)
        status = response.status
        return response
    except web.HTTPRequestEntityTooLarge:
        response = rest.too_large()
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except ConnectionResetError:
        response = rest.hung_up(request)
        status = response.status
        return response
    finally:
        metrics.count(request, status, started)

"""``GET /``: the status page for people; ``GET /ui/{file}``: its script and style sheet.

The page is three small files in ``agent/web/``, served as they are: no
build step, nothing from a CDN. It reads everything from ``GET /api/events``
(a snapshot, then each change) and acts through the REST API. ``POST /``
stays JSON-RPC for Jenkins.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from agent.api.rest import ApiError
from agent.model import Code

TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
FILES = {name: (resources.files("agent") / "web" / name).read_bytes() for name in TYPES}
ASSETS = sorted(name for name in TYPES if name != "index.html")


def _file(name: str) -> web.Response:
    return web.Response(
        body=FILES[name],
        content_type=TYPES[name],
        charset="utf-8",
        # Revalidated each time: an upgraded agent's page must not meet an old script.
        headers={"Cache-Control": "no-cache"},
    )


async def index(request: web.Request) -> web.Response:
    """``GET /``: the page, for browsers (anything that accepts HTML)."""
    accept = request.headers.get("Accept", "*/*")
    if not any(t in accept for t in ("text/html", "*/*", "text/*")):
        raise ApiError(
            Code.NOT_FOUND,
            "GET / is the status page (text/html); JSON-RPC is POST /, the REST API is "
            "under /api/ (GET /api/openapi.json describes it)",
            406,
        )
    return _file("index.html")


async def asset(request: web.Request) -> web.Response:
    """``GET /ui/{file}``: the page's script and style sheet."""
    name = request.match_info["file"]
    if name not in ASSETS:
        raise ApiError(Code.NOT_FOUND, f"no file {name!r}; there are {', '.join(ASSETS)}", 404)
    return _file(name)

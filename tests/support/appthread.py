"""The agent's real aiohttp application over its real core, served from a thread of this process.

For tests that send thousands of requests (fuzzing): no process to start per
test, yet every request goes over a real socket through the whole app --
middlewares, access guard, JSON-RPC and REST handlers, the authority, the
store. The core is built by ``build_core`` (tests.support.core) with the
given static resources; JSON-RPC is answered from loopback, REST changes
from loopback need no token (as an agent without ``[server] token_files``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from aiohttp import web

from agent.api.access import Access
from agent.api.allow import Allowlist
from agent.api.app import make_app
from agent.api.tokens import Tokens
from tests.support.core import core_harness
from tests.support.net import free_port
from tests.support.rig import description

IDENTITY = "resource-agent://fuzz"


@contextlib.contextmanager
def app_in_thread(state_dir: Path, resources: Sequence[str]) -> Iterator[str]:
    """Serve the app on a free loopback port until the block ends; yields its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    port = free_port()
    errors: list[BaseException] = []

    async def serve() -> None:
        async with core_harness(state_dir) as core:
            for rid in resources:
                core.authority.describe(description(rid, model="fuzz"))
            access = Access(Tokens(), Allowlist(["127.0.0.0/8"]))
            runner = web.AppRunner(make_app(core.authority, IDENTITY, access=access))
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", port).start()
                ready.set()
                await stop.wait()
            finally:
                await runner.cleanup()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="app-in-thread", daemon=True)
    thread.start()
    ready.wait(30)
    try:
        if errors:
            raise errors[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
    if errors:
        raise errors[0]

"""Limits that hold under abuse, and the listeners they guard.

A build machine's agent must keep answering Jenkins -- Reserve runs inside
Jenkins' queue maintenance -- whatever else connects to it:

- A request's header must arrive within ``[server] header_timeout`` of the
  connection (or of the previous answer on a kept-alive one), and an idle
  kept-alive connection closes after the same time: aiohttp's keep-alive
  timer does both, as it runs from the start of a connection until a whole
  request has been read. Answers say ``Keep-Alive: timeout=`` a second less,
  so a client that listens (Java's, Jenkins') never reuses a connection the
  agent is closing. The body must arrive within ``body_timeout``
  (agent/api/access.py reads it) and be at most 64 KiB.
- At most ``max_connections`` connections in all, and
  ``max_connections_per_address`` from one address, are served; one more is
  answered 503 at once and closed, before any of it is read. So forty slow
  clients on one machine take at most their own share, and Jenkins' calls
  from another address are served as before.

The HTTP listener serves JSON-RPC and REST; an optional second one
(``tls_listen``) serves the same with TLS for people and scripts. Jenkins'
client hard-codes ``http://``, so JSON-RPC stays on the plain listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from agent.api.cork import Corked, Outbox
from agent.api.express import Lane, keep_alive_seconds, peer_address
from agent.config import ServerSection, parse_hostport
from agent.credentials import token_path
from agent.model import Code

log = logging.getLogger(__name__)

# In-flight requests get this long to finish when the agent stops.
SHUTDOWN_TIMEOUT = 10.0
ALL = "*"  # the crowd of every address, in the gate's warnings


@dataclass(frozen=True, slots=True)
class Limits:
    """The connection limits of every listener (``[server]``)."""

    header_timeout: float = 5.0
    max_connections: int = 512
    max_connections_per_address: int = 64


@dataclass(frozen=True, slots=True)
class Listener:
    """One address to serve on, with TLS when ``ssl_context`` is given."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None


def _busy(message: str) -> bytes:
    body = json.dumps({"error": {"code": int(Code.BUSY), "message": message}}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    )
    return head.encode() + body


class Gate:
    """Counts the open connections, in all and by address, and turns away the excess."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0
        self.by_address: Counter[str] = Counter()
        self._warned: set[str] = set()

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; None if admitted, else why not."""
        limits = self.limits
        if self.by_address[address] >= limits.max_connections_per_address:
            crowd = address
            most = limits.max_connections_per_address
            why = f"too many connections from {address} (at most {most})"
        elif self.total >= limits.max_connections:
            crowd = ALL
            why = f"too many connections (at most {limits.max_connections})"
        else:
            self.total += 1
            self.by_address[address] += 1
            return None
        if crowd not in self._warned:  # once per crowd, not once per connection
            self._warned.add(crowd)
            log.warning("refusing connections: %s", why)
        return why

    def leave(self, address: str) -> None:
        """A counted connection closed."""
        self.total -= 1
        self.by_address[address] -= 1
        # A crowd that is gone (or half gone, for all of them) is warned of again if it returns.
        if self.by_address[address] <= 0:
            del self.by_address[address]
            self._warned.discard(address)
        if self.total <= self.limits.max_connections // 2:
            self._warned.discard(ALL)

    def wrap(
        self, factory: Callable[[], asyncio.Protocol], outbox: Outbox
    ) -> Callable[[], asyncio.Protocol]:
        """A protocol factory that admits each connection before ``factory``'s protocol sees it.

        What the protocol writes leaves through ``outbox`` (agent/api/cork.py).
        """
        return lambda: _Gated(self, factory, outbox)


class _Gated(asyncio.Protocol):
    """Passes a connection on to the HTTP protocol once the gate admits it."""

    def __init__(self, gate: Gate, factory: Callable[[], asyncio.Protocol], outbox: Outbox) -> None:
        self._gate = gate
        self._factory = factory
        self._outbox = outbox
        self._inner: asyncio.Protocol | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = peer_address(transport)
        refused = self._gate.admit(address)
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        stream = cast(asyncio.Transport, transport)
        if refused is not None:
            stream.write(_busy(refused))
            stream.close()
            return
        self._address = address
        self._inner = self._factory()
        self._inner.connection_made(Corked(stream, self._outbox))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._gate.leave(self._address)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GatedSite(web.BaseSite):
    """A TCP site whose connections pass the gate first."""

    def __init__(
        self, runner: web.BaseRunner, listener: Listener, gate: Gate, outbox: Outbox, lane: Lane
    ) -> None:
        super().__init__(runner, ssl_context=listener.ssl_context)
        self._listener = listener
        self._gate = gate
        self._outbox = outbox
        self._lane = lane

    @property
    def name(self) -> str:
        """``http://host:port`` (https with TLS)."""
        scheme = "https" if self._listener.ssl_context is not None else "http"
        host = self._listener.host
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{self._listener.port}"

    async def start(self) -> None:
        """Listen (OSError: cannot)."""
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._gate.wrap(self._lane.wrap(server), self._outbox),
            self._listener.host,
            self._listener.port,
            ssl=self._listener.ssl_context,
            reuse_address=True,
        )


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the TLS listener (OSError or ssl.SSLError: unusable files)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError too
        raise OSError(f"cannot load tls_cert {cert} with tls_key {key}: {exc}") from exc
    return context


def _keep_alive_header(seconds: float) -> Callable[[web.Request, web.StreamResponse], Any]:
    value = f"timeout={keep_alive_seconds(seconds)}"

    async def advertise(request: web.Request, response: web.StreamResponse) -> None:
        if response.keep_alive:
            response.headers["Keep-Alive"] = value

    return advertise


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, listeners: Sequence[Listener], limits: Limits
) -> AsyncIterator[Gate]:
    """Serve ``app`` on every listener until the block ends (OSError: cannot listen)."""
    app.on_response_prepare.append(_keep_alive_header(limits.header_timeout))
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        # Set on the runner: a site's own shutdown_timeout is deprecated in aiohttp 3.9+.
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        # Runs from a connection's start (or its last answer) until a request is read:
        # the header deadline and the idle keep-alive limit in one.
        keepalive_timeout=limits.header_timeout,
        # After an answer that leaves a body unread (408, 413), what is left of it is read
        # and dropped this long before the connection closes, not aiohttp's 10 s.
        lingering_time=limits.header_timeout,
    )
    await runner.setup()
    gate = Gate(limits)
    outbox = Outbox(asyncio.get_running_loop())
    sites: list[GatedSite] = []
    # Stop accepting, then finish in-flight requests -- the lane's calls, then aiohttp's,
    # each within SHUTDOWN_TIMEOUT (20 s at most, inside the unit's TimeoutStopSec=30s)
    # -- before anything below closes.
    try:
        async with Lane(app, limits.header_timeout, SHUTDOWN_TIMEOUT) as lane:
            try:
                for listener in listeners:
                    sites.append(site := GatedSite(runner, listener, gate, outbox, lane))
                    await site.start()
                yield gate
            finally:
                for site in sites:
                    await site.stop()
    finally:
        await runner.cleanup()


def limits_for(server: ServerSection) -> Limits:
    """The limits ``[server]`` sets."""
    return Limits(
        header_timeout=server.header_timeout,
        max_connections=server.max_connections,
        max_connections_per_address=server.max_connections_per_address,
    )


def listeners_for(server: ServerSection, config_dir: Path | None) -> list[Listener]:
    """The plain listener, and the TLS one if configured (OSError, ssl.SSLError: bad files).

    Relative ``tls_cert`` and ``tls_key`` are found like token files: in
    ``$CREDENTIALS_DIRECTORY`` under systemd, else beside the config.
    """
    listeners = [Listener(*server.address)]
    if server.tls_listen is not None:
        assert server.tls_cert is not None and server.tls_key is not None
        cert = token_path(server.tls_cert, config_dir)
        key = token_path(server.tls_key, config_dir)
        host, port = parse_hostport(server.tls_listen, "0.0.0.0")
        listeners.append(Listener(host, port, tls_context(str(cert), str(key))))
    return listeners

"""The express lane: Jenkins' JSON-RPC calls answered without aiohttp's request machinery.

JSON-RPC is most of what the agent answers, and aiohttp's request and response
objects, middlewares and per-request task cost about 75 µs a call on this
machine, where a lean HTTP/1.1 reader answering the same JSON costs 35 µs in
all (docs/benchmarks.md). So every connection starts in this lane, which takes
a request only when it is plainly Jenkins' kind: ``POST / HTTP/1.1``, header
lines that are well formed, one ``Content-Length`` of at most 64 KiB, and no
``Transfer-Encoding``, ``Content-Encoding``, ``Expect`` or ``Upgrade``, nor a
``Connection`` other than keep-alive. Anything else -- REST, the status page,
HTTP/1.0, a chunked body, a malformed or oversized header -- hands the
connection over, from that request on, to aiohttp, which answers it as it
answers every request.

For what it takes, the lane keeps aiohttp's promises: the answers of
agent/api/jsonrpc.py, one at a time and in order; the header within
``header_timeout`` of the connection or of the last answer, else the
connection closes; the body within ``body_timeout``, else 408; the JSON-RPC
allowlist, else 403; the same metrics and ``Keep-Alive: timeout=``; and on
shutdown, calls in flight finish before anything below closes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import cast

from aiohttp import hdrs, web
from aiohttp.http import SERVER_SOFTWARE

from agent.actions import CALLER
from agent.api import jsonrpc
from agent.api.access import ACCESS, jsonrpc_refusal, too_slow
from agent.api.metrics import METERS, tally
from agent.api.wire import MAX_BODY
from agent.model import Caller

log = logging.getLogger(__name__)

# aiohttp's longest header line, and most header lines: a head past either is aiohttp's to refuse.
MAX_HEAD = 8190
MAX_FIELDS = 128
_REQUEST_LINE = b"POST / HTTP/1.1"
# RFC 9110: a field name is a token; a value visible characters, spaces and tabs.
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
_SERVER = b"Server: %s\r\n" % SERVER_SOFTWARE.encode()  # as aiohttp's answers name it
_AIOHTTPS = frozenset({b"transfer-encoding", b"content-encoding", b"expect", b"upgrade"})


def peer_address(transport: asyncio.BaseTransport) -> str:
    """The peer's IP address, as aiohttp's ``request.remote`` gives it."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


def keep_alive_seconds(header_timeout: float) -> int:
    """What ``Keep-Alive: timeout=`` says: a second less than the agent waits.

    Java's HttpURLConnection (Jenkins' client) keeps an idle connection 5 s
    unless told otherwise: told a second less, it never sends a request on a
    connection the agent is closing.
    """
    return max(1, math.ceil(header_timeout) - 1)


def body_length(head: bytes) -> int | None:
    """The body's length if the head is one the lane takes, else None."""
    lines = head.split(b"\r\n")
    if lines[0] != _REQUEST_LINE or len(head) > MAX_HEAD or len(lines) > MAX_FIELDS + 1:
        return None
    length: int | None = None
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            return None
        name, value = field[1].lower(), field[2].strip(b" \t")
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 6:
                return None
            length = int(value)
        elif name in _AIOHTTPS or (name == b"connection" and value.lower() != b"keep-alive"):
            return None
    return length if length is not None and length <= MAX_BODY else None


class Lane:
    """The express lane of one application: its connections and the calls in flight.

    ``async with`` it around the listeners' life: leaving it closes idle
    connections and gives calls in flight ``shutdown_timeout`` to answer.
    """

    def __init__(
        self, app: web.Application, header_timeout: float, shutdown_timeout: float
    ) -> None:
        # Python 3.11's get_running_loop() costs a getpid(2) a call: looked up once.
        self.loop = asyncio.get_running_loop()
        self.app = app
        self.access = app[ACCESS]
        self.meters = app[METERS]
        self.header_timeout = header_timeout
        self.shutdown_timeout = shutdown_timeout
        self.keep_alive = b"Keep-Alive: timeout=%d\r\n" % keep_alive_seconds(header_timeout)
        self.open: set[_Express] = set()
        self.calls: set[asyncio.Task[None]] = set()
        self.closing = False
        self._date = (0, b"")

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory: the lane first, ``factory``'s protocol once it hands over."""
        return lambda: _Express(self, factory)

    def date(self) -> bytes:
        """The ``Date`` header line, formatted once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, b"Date: %s\r\n" % formatdate(now, usegmt=True).encode())
        return self._date[1]

    async def __aenter__(self) -> Lane:
        """The lane, taking connections once a listener hands them to ``wrap``'s protocol."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Finish the calls in flight (see ``close``)."""
        await self.close(self.shutdown_timeout)

    async def close(self, timeout: float) -> None:
        """Close idle connections; give calls in flight ``timeout`` to answer, then cancel them."""
        self.closing = True
        for connection in list(self.open):
            connection.close_if_idle()
        if self.calls:
            _, late = await asyncio.wait(set(self.calls), timeout=timeout)
            for call in late:
                call.cancel()
        for connection in list(self.open):
            connection.abort_unanswered()


class _Express(asyncio.Protocol):
    """One connection in the lane, until it hands over to aiohttp's protocol."""

    def __init__(self, lane: Lane, factory: Callable[[], asyncio.Protocol]) -> None:
        self._lane = lane
        self._factory = factory
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._buffer = b""
        self._inner: asyncio.Protocol | None = None
        self._busy = False  # a call is being answered
        self._paused = False  # the peer does not read its answers: take no more
        self._throttled = False  # reading paused while the buffer is full
        # The deadline of what is awaited (the header, or the body when _body_due), and
        # what then; None while a call is answered. The timer fires at or before it.
        self._deadline: float | None = None
        self._then: Callable[[], None] = self._idle
        self._timer: asyncio.TimerHandle | None = None
        self._body_due = False

    # ------------------------------------------------------------ the transport's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._address = peer_address(transport)
        self._lane.open.add(self)
        self._wait(self._lane.header_timeout, self._idle)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
            return
        self._buffer += data
        if not self._busy and not self._paused:
            self._next()
        elif len(self._buffer) > MAX_HEAD + MAX_BODY and not self._throttled:
            self._throttled = True
            self._transport_().pause_reading()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        # A call in flight runs on: what it changes is committed whether or not its answer
        # finds the client, as in aiohttp (docs/api.md: a lost answer).
        self._stop_timer()
        self._lane.open.discard(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()
        self._paused = True

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
            return
        self._paused = False
        if not self._busy:
            self._next()

    # ------------------------------------------------------------ the lane's work

    def _transport_(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    def _next(self) -> None:
        """Take the next whole request, wait for the rest of it, or hand over."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self._hand_over()
            return  # the header's deadline runs
        length = body_length(buffer[:end])
        if length is None:
            self._hand_over()
            return
        start = end + 4
        if len(buffer) < start + length:
            if not self._body_due:
                self._body_due = True
                self._wait(self._lane.access.body_timeout, self._too_slow)
            return
        self._deadline = None
        self._body_due = False
        body, self._buffer = buffer[start : start + length], buffer[start + length :]
        self._take(body)

    def _take(self, body: bytes) -> None:
        lane = self._lane
        started = time.perf_counter()
        refusal = jsonrpc_refusal(lane.access, self._address)
        if refusal is not None:
            self._answer_with(refusal, started)
            return
        self._busy = True
        call = lane.loop.create_task(self._call(body, started))
        lane.calls.add(call)
        call.add_done_callback(lane.calls.discard)

    async def _call(self, body: bytes, started: float) -> None:
        CALLER.set(Caller(self._address))
        try:
            answer = await jsonrpc.answer(self._lane.app, body)
        except Exception:  # jsonrpc answers every error itself: this is a defect
            log.exception("JSON-RPC from %s failed", self._address)
            self._answer_with(web.Response(status=500, text="internal error\n"), started)
            return
        if answer is None:
            self._send(b"HTTP/1.1 204 No Content\r\n", b"", 204, started)
        else:
            self._send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json-rpc; charset=utf-8\r\n",
                       answer, 200, started)  # fmt: skip

    def _answer_with(self, response: web.Response, started: float) -> None:
        """Send one of aiohttp's answers (the rare ones: 403, 408, 500) and close."""
        body = response.body if isinstance(response.body, bytes) else b""
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: close\r\n" % (
            response.status, response.reason.encode(),
            response.headers[hdrs.CONTENT_TYPE].encode(),
        )  # fmt: skip
        self._busy = True  # nothing more is read from this connection
        self._send(head, body, response.status, started, close=True)

    def _send(
        self, head: bytes, body: bytes, status: int, started: float, *, close: bool = False
    ) -> None:
        lane = self._lane
        transport = self._transport_()
        close = close or lane.closing
        length = b"Content-Length: %d\r\n" % len(body) if status != 204 else b""
        alive = lane.keep_alive if not close else b""
        transport.write(head + length + lane.date() + _SERVER + alive + b"\r\n" + body)
        tally(lane.meters, "/", "POST", status, started)
        if close or transport.is_closing():
            transport.close()
            return
        self._busy = False
        if self._throttled:
            self._throttled = False
            transport.resume_reading()
        self._wait(lane.header_timeout, self._idle)
        if not self._paused:
            self._next()

    def _hand_over(self) -> None:
        """aiohttp takes the connection from this request on."""
        self._stop_timer()
        self._lane.open.discard(self)
        self._lane.meters.handovers.inc()
        inner = self._inner = self._factory()
        transport = self._transport_()
        inner.connection_made(transport)
        if self._paused:
            inner.pause_writing()
        if self._throttled:
            transport.resume_reading()
        data, self._buffer = self._buffer, b""
        inner.data_received(data)

    # ------------------------------------------------------------ deadlines and closing

    def _wait(self, seconds: float, then: Callable[[], None]) -> None:
        """Call ``then`` in ``seconds`` unless a call is taken first.

        A kept-alive connection waits once per call: its timer is not cancelled and
        set again each time (two timer operations a call), but moved on when it fires.
        """
        loop = self._lane.loop
        self._deadline, self._then = loop.time() + seconds, then
        if self._timer is not None and self._timer.when() > self._deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._deadline is None:
            return  # a call was taken: the next answer sets the next deadline
        loop = self._lane.loop
        if self._deadline > loop.time():
            self._timer = loop.call_at(self._deadline, self._expire)
            return
        self._deadline = None
        self._then()

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle(self) -> None:
        """No whole header in time (or an idle kept-alive connection): close, as aiohttp does."""
        self._transport_().close()

    def _too_slow(self) -> None:
        self._answer_with(too_slow(self._lane.access.body_timeout), time.perf_counter())

    def close_if_idle(self) -> None:
        """Close now unless a call is being answered (it closes once answered)."""
        if not self._busy:
            self._transport_().close()

    def abort_unanswered(self) -> None:
        """Close now if the call in flight was cancelled; one that answered is closing."""
        transport = self._transport_()
        if not transport.is_closing():
            transport.abort()

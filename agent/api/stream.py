"""``GET /api/events``: every committed change as a server-sent event, resumable by its id.

A client that connects without an id, or with one this agent no longer has
(it restarted, or the client was away too long), first gets a ``snapshot``
event -- the agent, its coordinators and every resource -- then one
``resource`` event per change as it is committed, and a ``coordinators``
event when a coordinator's sync changes. Ids are ``<run>.<number>``: a client
that reconnects with ``Last-Event-ID`` (browsers do it by themselves) gets
exactly what it missed. Keys are never in the stream.

A change is turned into JSON only when a client needs it: at once while
anyone follows the stream, else when someone resumes from before it. With
nobody watching (the usual case under load) an event costs a few words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import Field

from agent.api.schemas import CoordinatorOut, HoldOut, IsoTime, Out, ResourceOut
from agent.api.wire import CoordinatorStatus
from agent.authority import Authority
from agent.model import EndReason, Event, EventType, Resource, isotime

log = logging.getLogger(__name__)

BACKLOG = 1000  # events kept for clients that reconnect
CLIENT_QUEUE = 1000  # events a slow client may lag behind before it is dropped (it resumes)
HEARTBEAT = 15.0  # seconds between comments on a quiet stream (proxies close idle ones)
COORDINATOR_CHECK = 1.0  # seconds between looks at the coordinators' sync
RETRY_MS = 1000  # how soon a browser reconnects after the stream ends


@dataclass(frozen=True, slots=True)
class About:
    """What the status page's header says about this agent."""

    node: str
    version: str
    started: float


class ResourceView(ResourceOut):
    """A resource as the stream shows it: what the REST API says, and whether it has sessions."""

    sessions: bool = Field(description="Locks on it are provisioned and torn down (with logs).")


class AgentOut(Out):
    """The agent itself."""

    node: str
    version: str
    started: IsoTime
    now: IsoTime = Field(description="The agent's clock when the snapshot was taken.")


class Snapshot(Out):
    """``event: snapshot``: everything, when a client cannot resume."""

    agent: AgentOut
    coordinators: list[CoordinatorOut]
    resources: list[ResourceView]


class Change(Out):
    """``event: resource``: one committed change (``removed``: the resource is gone for good)."""

    type: EventType
    at: IsoTime
    resource: ResourceView
    hold: HoldOut | None = Field(description="The hold taken, renewed or ended; never its key.")
    ended: EndReason | None = Field(description="How the hold ended, for released and expired.")


class CoordinatorsChanged(Out):
    """``event: coordinators``: a coordinator's sync changed."""

    coordinators: list[CoordinatorOut]


STREAM_MODELS = (Snapshot, Change, CoordinatorsChanged)


class _Kept:
    """One numbered event of the backlog, its frame written on first use."""

    __slots__ = ("_data", "_frame", "name", "seq")

    def __init__(self, seq: int, name: str, data: str | Callable[[], str]) -> None:
        self.seq = seq
        self.name = name
        self._data = data
        self._frame: str | None = None

    def frame(self, run: str) -> str:
        """The server-sent event, ids of this ``run``."""
        if self._frame is None:
            data = self._data if isinstance(self._data, str) else self._data()
            self._frame = _frame(f"{run}.{self.seq}", self.name, data)
            self._data = ""
        return self._frame


class EventStream:
    """The bus's committed events, numbered and kept for a while, for every SSE client."""

    def __init__(
        self,
        authority: Authority,
        about: About,
        coordinators: CoordinatorStatus | None = None,
        has_sessions: Callable[[Resource], bool] | None = None,
    ) -> None:
        self._authority = authority
        self._about = about
        self._coordinators = coordinators
        self._has_sessions = has_sessions
        self._run = secrets.token_hex(4)  # ids of another run cannot be resumed
        self._seq = 0
        self._backlog: deque[_Kept] = deque(maxlen=BACKLOG)
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._last_coordinators = ""

    # ------------------------------------------------------------- lifecycle

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: follow the bus and the coordinators while the app runs."""
        unsubscribe = self._authority.bus.subscribe(self._on_event)
        watcher = asyncio.create_task(self._watch_coordinators(), name="event-stream")
        try:
            yield
        finally:
            unsubscribe()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def close_clients(self, app: web.Application) -> None:
        """aiohttp on_shutdown: end every stream now, or each would hold the shutdown up."""
        for queue in self._clients:
            queue.put_nowait(None)

    # ---------------------------------------------------------------- events

    def view(self, res: Resource) -> ResourceView:
        """``res`` as the stream and the status page show it."""
        has = self._has_sessions is not None and self._has_sessions(res)
        shown = ResourceOut.of(res, self._authority.wall)
        return ResourceView.model_construct(**dict(shown), sessions=has)

    def snapshot(self) -> Snapshot:
        """Everything, now."""
        about = self._about
        return Snapshot.model_construct(
            agent=AgentOut.model_construct(
                node=about.node,
                version=about.version,
                started=isotime(about.started),
                now=isotime(time.time()),
            ),
            coordinators=self._coordinator_list(),
            resources=[self.view(r) for r in self._authority.registry.resources()],
        )

    def _coordinator_list(self) -> list[CoordinatorOut]:
        source = self._coordinators
        return [CoordinatorOut.of(s) for s in source.status()] if source is not None else []

    def _on_event(self, event: Event) -> None:
        at = time.time()
        self._publish("resource", lambda: self._change(event, at))

    def _change(self, event: Event, at: float) -> str:
        return Change.model_construct(
            type=event.type,
            at=isotime(at),
            resource=self.view(event.resource),
            hold=HoldOut.of(event.hold, self._authority.wall) if event.hold is not None else None,
            ended=event.ended,
        ).model_dump_json()

    async def _watch_coordinators(self) -> None:
        if self._coordinators is None:
            return
        while True:
            await asyncio.sleep(COORDINATOR_CHECK)
            data = CoordinatorsChanged.model_construct(
                coordinators=self._coordinator_list()
            ).model_dump_json()
            if data != self._last_coordinators:
                if self._last_coordinators:
                    self._publish("coordinators", data)
                self._last_coordinators = data

    def _publish(self, name: str, data: str | Callable[[], str]) -> None:
        self._seq += 1
        kept = _Kept(self._seq, name, data)
        self._backlog.append(kept)
        if not self._clients:
            return
        frame = kept.frame(self._run)
        for queue in list(self._clients):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                # Too slow to keep up: its stream ends, and it resumes from its last id.
                self._clients.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    def _missed(self, last_id: str | None) -> list[str] | None:
        """The frames after ``last_id``, or None when they cannot be had (snapshot instead)."""
        run, _, number = (last_id or "").partition(".")
        if run != self._run or not (number.isascii() and number.isdigit()):
            return None
        after = int(number)
        if after > self._seq:
            return None
        if after < self._seq and (not self._backlog or after < self._backlog[0].seq - 1):
            return None  # some of what it missed is no longer kept
        return [kept.frame(self._run) for kept in self._backlog if kept.seq > after]

    # ------------------------------------------------------------------ HTTP

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/events``: the snapshot or what was missed, then every change."""
        last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        queue: asyncio.Queue[str | None] = asyncio.Queue(CLIENT_QUEUE)
        missed = self._missed(last_id)
        if missed is None:
            first = [
                f"retry: {RETRY_MS}\n\n",
                _frame(f"{self._run}.{self._seq}", "snapshot", self.snapshot().model_dump_json()),
            ]
        else:
            first = [f"retry: {RETRY_MS}\n\n", *missed]
        self._clients.add(queue)  # from here on nothing is missed: no await since the snapshot
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
            }
        )
        try:
            await resp.prepare(request)
            await resp.write("".join(first).encode())
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    frame = ": keepalive\n\n"
                if frame is None:
                    break
                await resp.write(frame.encode())
            await resp.write_eof()
        except ConnectionResetError:
            log.debug("event stream client %s went away", request.remote)
        finally:
            self._clients.discard(queue)
        return resp


def _frame(event_id: str, name: str, data: str) -> str:
    """One server-sent event (``data`` is one line of JSON: no newline to split)."""
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n"

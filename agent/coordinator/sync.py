"""Keeps each Jenkins in step with the authority: one task per coordinator.

The sync is state-based, not a replay of events: for every resource it keeps
the latest snapshot the authority published (what should be) and what this
coordinator is believed to have (what is), and sends only what it takes to
turn one into the other. That coalesces by itself -- a change after a quiet
spell goes out at once, and in a burst at most one round goes out per batch
window, so a reserve and a release within it cost nothing and a hundred new
devices cost one metadata update -- and makes retrying trivially safe: after a
failure the difference is still there and is sent again, whatever the
coordinator missed.

At start (and after Jenkins says the node or a resource is missing) the sync
reads the node's metadata, so the belief starts from Jenkins' real state; the
agent is the source of truth and everything that differs is corrected. It
reads it again SETTLE after a coordinator that timed out or failed answers
again: a wedged Jenkins may carry out what the agent gave up on (a lock
after its release, which would otherwise stay there for good).

Nothing here ever blocks the authority: the bus subscriber only records the
snapshot and wakes the task. Each coordinator has its own task, client and
backoff, so a coordinator that hangs delays no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

from agent.config import CoordinatorSection
from agent.coordinator import plan
from agent.coordinator.documents import holder_name, parse_tree, tree_document
from agent.coordinator.jenkins import Answer, Failure, JenkinsClient, JenkinsError, client_for
from agent.coordinator.plan import Belief, Ending, Post
from agent.coordinator.status import HEALTHY, WAITING, SyncError, SyncState, SyncStatus
from agent.events import EventBus
from agent.lifecycle import Service
from agent.model import HOLD_ENDING, Event, EventType, Holder, Resource

log = logging.getLogger(__name__)

T = TypeVar("T")

# One metadata update carries at most this many resources.
MAX_BATCH = 250
RETRY_BASE = 0.5  # seconds before the first retry of a transient failure
# A stopping agent gives a healthy coordinator this long to take what is
# pending (a release just answered, say); an unhealthy one is not waited for,
# and the next start's reconciliation sends whatever is left.
DRAIN = 2.0
SLOW = frozenset({Failure.AUTH, Failure.CONFIG, Failure.NO_NODE})
# After these, what was sent may have been carried out or not: read Jenkins again.
UNSURE = frozenset({Failure.UNREACHABLE, Failure.SERVER})
SETTLE = 1.0  # seconds after the first success before that re-read


class CoordinatorSync(Service):
    """Keeps one Jenkins in step with the authority."""

    def __init__(
        self,
        bus: EventBus,
        snapshot: Callable[[], Iterable[Resource]],
        section: CoordinatorSection,
        *,
        node: str,
        identity: str,
        config_dir: Path | None = None,
    ) -> None:
        self.section = section
        self._config_dir = config_dir  # where a relative token_file is, without systemd
        self.node = section.node or node
        self._bus = bus
        self._snapshot = snapshot
        # Holds taken by the agent itself, and corrections the agent makes on
        # its own authority (stale locks, forced releases), carry this.
        self._own = Holder(identity, f"resource-agent on {node}")
        self._want: dict[str, Resource] = {}
        self._ended: dict[str, Ending] = {}
        self._belief: dict[str, Belief] = {}
        self._dirty: set[str] = set()
        self._reconciled = False
        self._unsure = False  # a request failed in a way that may have taken effect
        self._reread: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is pending
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._client: JenkinsClient | None = None
        self._failures = 0
        self._state = SyncState.STARTING
        self._last_success: float | None = None
        self._last_error: SyncError | None = None
        self._next_retry: float | None = None
        self._requests = 0
        self._results: Counter[str] = Counter()  # requests by result: "ok" or a Failure
        self._pending_since: float | None = None  # when the oldest unsent change came

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the current resources, follow the bus, and start the task (no waiting)."""
        for res in self._snapshot():
            self._want[res.id] = res
        self._pending_since = time.time()  # nothing is known to be in Jenkins yet
        self._unsubscribe = self._bus.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run(), name=f"coordinator {self.section.url}")

    async def stop(self) -> None:
        """Stop following the bus, let a healthy coordinator drain briefly, then cancel."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            if self._reconciled and self._dirty and self._state in HEALTHY:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), DRAIN)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._reread is not None:
            self._reread.cancel()
        if self._client is not None:
            await self._client.close()

    def _on_event(self, event: Event) -> None:
        # Called on every committed event: record and wake, nothing more.
        rid = event.resource.id
        if event.type is EventType.REMOVED:
            self._want.pop(rid, None)  # Jenkins keeps it, disabled, as for a vanished device
        else:
            self._want[rid] = event.resource
        if event.type in HOLD_ENDING and event.hold is not None and event.ended is not None:
            self._ended[rid] = Ending(event.hold, event.ended)
        if self._pending_since is None:
            self._pending_since = time.time()
        self._dirty.add(rid)
        self._idle.clear()
        self._wake.set()

    # --------------------------------------------------------------- status

    @property
    def state(self) -> SyncState:
        """Where this sync is now."""
        return self._state

    def status(self) -> SyncStatus:
        """How this sync is doing now."""
        return SyncStatus(
            url=self.section.url,
            node=self.node,
            tree=self.section.tree,
            state=self._state,
            pending=len(self._dirty) if self._reconciled else len(self._want),
            last_success=self._last_success,
            last_error=self._last_error,
            next_retry=self._next_retry if self._state in WAITING else None,
            consecutive_failures=self._failures,
            requests=self._requests + (self._client.requests if self._client else 0),
            results=dict(self._results),
            pending_since=self._pending_since,
        )

    # ----------------------------------------------------------------- loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        window = self.section.batch_window
        last = -window  # when the last round of requests began
        while True:
            if self._reconciled and not self._dirty:
                self._state = SyncState.IN_SYNC
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            # After a quiet spell a change goes out at once; in a burst, at most one
            # round per window, so what arrives meanwhile goes out together.
            await asyncio.sleep(max(0.0, last + window - loop.time()))
            if self._state not in WAITING:
                # A retry stays failing until it succeeds: health and alerts must not flap.
                self._state = SyncState.SYNCING if self._reconciled else self._state
            last = loop.time()
            try:
                client = self._connect()
                if not self._reconciled:
                    await self._reconcile(client)
                await self._flush(client)
            except JenkinsError as err:
                await self._failed(err)
            except Exception as exc:  # a bug must not end this coordinator's sync for good
                log.exception("coordinator %s: internal error", self.section.url)
                await self._failed(JenkinsError(Failure.INTERNAL, f"internal error: {exc!r}"))
            else:
                self._failures = 0
                self._last_success = time.time()
                if self._unsure:
                    self._unsure = False
                    self._reread = loop.call_later(SETTLE, self._read_again)

    def _read_again(self) -> None:
        self._reconciled = False
        self._wake.set()

    async def _failed(self, err: JenkinsError) -> None:
        self._failures += 1
        slow = err.kind in SLOW
        if slow:
            delay = self.section.retry_max
        else:
            delay = min(self.section.retry_max, RETRY_BASE * 2 ** (self._failures - 1))
            delay = delay / 2 + random.uniform(0, delay / 2)  # jitter: coordinators drift apart
        self._unsure = self._unsure or err.kind in UNSURE
        if err.kind is Failure.NO_NODE:
            self._reconciled = False  # the node may come back with other metadata
        if err.kind in (Failure.AUTH, Failure.CONFIG) and self._client is not None:
            # Read the token (and CA file) again next time: the fix is probably a new file.
            self._requests += self._client.requests
            await self._client.close()
            self._client = None
        self._state = SyncState.FAILING if slow else SyncState.RETRYING
        self._next_retry = time.time() + delay
        self._note_error(err)
        level = logging.ERROR if slow or self._failures == 1 else logging.WARNING
        log.log(level, "coordinator %s: %s (retry in %.1f s)", self.section.url, err, delay)
        await asyncio.sleep(delay)

    def _connect(self) -> JenkinsClient:
        if self._client is None:
            self._client = client_for(self.section, self.node, self._config_dir)
        return self._client

    # -------------------------------------------------------- reconciliation

    async def _reconcile(self, client: JenkinsClient) -> None:
        """Start from what Jenkins really has under the tree."""
        if self._state not in WAITING:
            self._state = SyncState.RECONCILING
        remote = parse_tree(await self._ask(client.get_metadata()), self.section.tree)
        self._belief = {}
        for rid, rem in remote.items():
            belief = Belief(
                registered=True,
                description=rem.description,
                values=dict(rem.values),
                enabled=rem.enabled,
                hold=rem.hold,
            )
            res = self._want.get(rid)
            if res is not None and res.hold is not None and res.hold.kind is rem.hold:
                # Held by someone else there (a late command): the same kind is not enough.
                same = rem.held_by in (None, holder_name(res.hold.holder))
                belief.holder = res.hold.holder if same else Holder("", rem.held_by or "")
            self._belief[rid] = belief
        self._dirty |= set(self._want) | set(remote)
        self._idle.clear()
        self._reconciled = True
        extra = sorted(set(remote) - set(self._want))
        log.info(
            "coordinator %s: node %s has %d of our resources under %r%s",
            self.section.url,
            self.node,
            len(remote),
            self.section.tree,
            f"; {len(extra)} unknown to this agent will be disabled" if extra else "",
        )
        self._state = SyncState.SYNCING

    # ---------------------------------------------------------------- flush

    async def _flush(self, client: JenkinsClient) -> None:
        ids = sorted(self._dirty)
        posts = [p for rid in ids if (p := self._pending_value(rid)) is not None]
        for start in range(0, len(posts), MAX_BATCH):
            await self._post(client, posts[start : start + MAX_BATCH])
        for rid in ids:
            await self._send_commands(client, rid)
        for rid in ids:
            if self._in_sync(rid):
                self._dirty.discard(rid)
        if not self._dirty:
            self._pending_since = None

    def _pending_value(self, rid: str) -> Post | None:
        return plan.pending_post(rid, self._want.get(rid), self._belief.setdefault(rid, Belief()))

    async def _post(self, client: JenkinsClient, posts: list[Post]) -> None:
        try:
            document = tree_document(self.section.tree, (p.value for p in posts))
            answer = await self._ask(client.update(document))
        except JenkinsError as err:
            if err.kind is not Failure.REJECTED:
                raise
            if len(posts) > 1:
                # Find the culprit: the others must still get through.
                half = len(posts) // 2
                await self._post(client, posts[:half])
                await self._post(client, posts[half:])
                return
            post = posts[0]
            self._belief[post.rid].rejected = post.value
            self._note_error(err)
            log.error(
                "coordinator %s rejected resource %s; not resending it until it changes: %s; "
                "document: %s",
                self.section.url,
                post.rid,
                err.message,
                json.dumps(tree_document(self.section.tree, [post.value])),
            )
            return
        self._check_saved(answer, "a metadata update")
        for post in posts:
            plan.apply_post(self._belief[post.rid], post)

    def _commands(self, rid: str) -> list[plan.Command]:
        return plan.commands(
            self._want.get(rid), self._belief.get(rid), self._ended.get(rid), self._own
        )

    async def _send_commands(self, client: JenkinsClient, rid: str) -> None:
        for cmd in self._commands(rid):
            try:
                answer = await self._ask(client.command(cmd.name, rid, **cmd.params))
                self._check_saved(answer, cmd.name)
            except JenkinsError as err:
                if err.kind is Failure.NO_RESOURCE:
                    if rid not in self._want:
                        del self._belief[rid]  # gone from Jenkins too: nothing to correct
                        return
                    # Someone removed it in Jenkins: register it afresh, then retry.
                    self._belief[rid] = Belief()
                    raise
                if err.kind is not Failure.REJECTED:
                    raise
                # Not resent in a loop: the belief moves on as if it had been applied.
                self._note_error(err)
                log.error("coordinator %s rejected %s on %s: %s", self.section.url,
                          cmd.name, rid, err.message)  # fmt: skip
            plan.apply_command(self._belief[rid], cmd)

    async def _ask(self, request: Awaitable[T]) -> T:
        """One request to Jenkins, counted by its result."""
        try:
            answer = await request
        except JenkinsError as err:
            self._results[err.kind.value] += 1
            raise
        self._results["ok"] += 1
        return answer

    def _check_saved(self, answer: Answer, what: str) -> None:
        if answer.unsaved:
            # Jenkins has it now but would forget it on restart; the next start's
            # reconciliation corrects that, so this is worth a warning, not a retry.
            log.warning("coordinator %s could not save %s (WARN_NO_SAVE): %s",
                        self.section.url, what, answer.message)  # fmt: skip

    def _note_error(self, err: JenkinsError) -> None:
        self._last_error = SyncError(time.time(), err.kind, err.message)

    def _in_sync(self, rid: str) -> bool:
        return self._pending_value(rid) is None and not self._commands(rid)


class Coordinators(Service):
    """Every configured coordinator's sync, started and stopped together."""

    def __init__(self, syncs: list[CoordinatorSync]) -> None:
        self.syncs = syncs

    async def start(self) -> None:
        """Start every sync; returns at once, whatever the coordinators do."""
        for sync in self.syncs:
            await sync.start()

    async def stop(self) -> None:
        """Stop every sync (together: each may drain for a moment)."""
        await asyncio.gather(*(sync.stop() for sync in self.syncs))

    def status(self) -> list[SyncStatus]:
        """Each coordinator's status, for ``GET /api/coordinators``."""
        return [s.status() for s in self.syncs]

    def health(self) -> list[bool]:
        """Whether each coordinator is healthy (cheap: no status is built)."""
        return [s.state in HEALTHY for s in self.syncs]

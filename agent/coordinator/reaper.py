"""No lock outlives its Jenkins build: locks whose build has ended are released.

A Jenkins releases its lock when the build ends; when that release is lost
(Jenkins crashed or restarted, the build was deleted) the resource would stay
locked forever. For each lock whose holder is a configured coordinator
(``clientInfo.id`` equal to its url), the reaper asks that Jenkins whether the
build still runs -- at start-up, then every ``[agent] reap_interval`` for locks
older than that. A build that is no longer building, or that Jenkins no longer
has (404), has its lock released on the agent's authority (and torn down by
its session). An unreachable Jenkins, or any other answer, changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.authority import Authority
from agent.config import CoordinatorSection
from agent.coordinator.jenkins import JenkinsClient, JenkinsError, client_for
from agent.lifecycle import Service
from agent.model import EndReason, HoldKind, Refused, Resource

log = logging.getLogger(__name__)

# Only a Lock's clientInfo.url names a build; a queue item's names the job.
BUILD_URL = re.compile(r"^(job/[^/]+/)+\d+/$")


class Reaper(Service):
    """Releases the locks of builds that have ended, one coordinator at a time."""

    def __init__(
        self,
        authority: Authority,
        sections: Sequence[CoordinatorSection],
        *,
        node: str,
        interval: float,
        config_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._authority = authority
        self._sections = {s.url: s for s in sections}
        self._node = node
        self._interval = interval
        self._config_dir = config_dir
        self._clock = clock
        self._clients: dict[str, JenkinsClient] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Look at every lock now (in the background), then every interval."""
        if self._sections:
            self._task = asyncio.create_task(self._run(), name="reaper")

    async def stop(self) -> None:
        """Stop looking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in self._clients.values():
            await client.close()

    async def _run(self) -> None:
        await self.reap(older_than=None)
        while True:
            await asyncio.sleep(self._interval)
            await self.reap(older_than=self._interval)

    async def reap(self, older_than: float | None) -> list[str]:
        """Release the locks whose build has ended; answer their resource ids."""
        now = self._clock()
        candidates = [
            res
            for res in self._authority.registry.resources()
            if res.hold is not None
            and res.hold.kind is HoldKind.LOCKED
            and res.hold.holder.id in self._sections
            and BUILD_URL.match(res.hold.holder.url)
            and (older_than is None or res.hold.since <= now - older_than)
        ]
        released = []
        for res in candidates:
            if await self._ended(res):
                released.append(res.id)
        return released

    async def _ended(self, res: Resource) -> bool:
        assert res.hold is not None
        hold = res.hold
        build = f"{hold.holder.id}{hold.holder.url}"
        try:
            client = self._client(hold.holder.id)
            running = await client.build_running(hold.holder.url)
        except JenkinsError as err:
            log.info("reaper: cannot tell whether %s still runs (%s); %s stays locked",
                     build, err, res.id)  # fmt: skip
            return False
        if running:
            return False
        try:
            await self._authority.release(res.id, hold.key, ended=EndReason.BUILD_ENDED)
        except Refused:
            return False  # released or changed meanwhile: nothing stale left
        log.warning("reaper: released %s: its build %s is no longer running", res.id, build)
        return True

    def _client(self, url: str) -> JenkinsClient:
        client = self._clients.get(url)
        if client is None:
            client = self._clients[url] = client_for(
                self._sections[url], self._node, self._config_dir
            )
        return client

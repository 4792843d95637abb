"""The composition root: builds every part from the settings and runs them.

Parts are entered into one ``AsyncExitStack`` in the order the data flows:
the core, the systemd side, the sources, the coordinator syncs, and last the
HTTP listener. They are stopped in reverse: the listener first (no new
commands, in-flight ones finish), the store last (everything answered is on
disk). A part that fails to start stops the ones before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from pathlib import Path
from typing import Any

from agent import __version__, audit
from agent.api.access import access_for, announce
from agent.api.app import make_app
from agent.api.limits import limits_for, listeners_for, serving
from agent.api.stream import About
from agent.config import Settings
from agent.config.sessions import rule_for
from agent.coordinator.reaper import Reaper
from agent.coordinator.sync import Coordinators, CoordinatorSync
from agent.core import Core, build_core
from agent.credentials import CredentialError
from agent.discovery.adb import AdbSource
from agent.discovery.inventory import Inventory
from agent.discovery.static import StaticSource
from agent.discovery.udev import UdevSource
from agent.meters import Meters
from agent.metrics.sink import MetricsSink
from agent.recovery.ladder import Recovery
from agent.sessions.journal import Journal
from agent.sessions.manager import Sessions
from agent.systemd.notify import Notifier
from agent.systemd.supervision import Supervision
from agent.waitlist import Waitlist

log = logging.getLogger(__name__)


class StartFailed(Exception):
    """A part could not start; the reason has been logged."""


async def _enter(stack: contextlib.AsyncExitStack, part: Any, what: str) -> Any:
    """Start ``part`` on the stack; a failure is logged once and becomes StartFailed."""
    try:
        return await stack.enter_async_context(part)
    except Exception as exc:
        log.error(
            "cannot start %s, stopping: %s",
            what,
            str(exc) or type(exc).__name__,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        raise StartFailed(what) from exc


# Requests allocate many short-lived containers: with Python's default 700, a
# young-generation collection ran every few requests (7-10% of the event loop's time
# at 32 clients), and full ones walked every object imported at start (tens of ms).
GC_YOUNG_THRESHOLD = 10_000


def _settle_garbage_collector() -> None:
    """Freeze what exists by now (it lives as long as the process); collect the young less often."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


class Daemon:
    """One agent: store, registry, authority, sources, sinks and the HTTP API."""

    def __init__(self, settings: Settings, state_dir: Path, config_dir: Path | None = None) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.config_dir = config_dir  # a relative token_file is beside the config (no systemd)
        self._stop = asyncio.Event()
        self._meters = Meters()
        self._started = time.time()

    def request_stop(self) -> None:
        """Begin an orderly shutdown."""
        self._stop.set()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0); exit 1 when a part cannot start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        _settle_garbage_collector()
        settings = self.settings
        try:
            async with build_core(
                self.state_dir,
                grace=settings.agent.grace_period,
                needs_session=lambda res: rule_for(settings.session, res) is not None,
                sinks=[audit.audit],
                observe_commit=self._meters.commit_seconds.observe,
            ) as core:
                await self._serve(core)
        except StartFailed:
            return 1
        return 0

    async def _serve(self, core: Core) -> None:
        settings = self.settings
        identity = settings.agent.client_identity
        try:
            access = access_for(settings, self.config_dir)
            listeners = listeners_for(settings.server, self.config_dir)
        except (CredentialError, OSError) as exc:
            log.error("cannot start the API, stopping: %s", exc)
            raise StartFailed("API") from exc
        coordinators = Coordinators(
            [
                CoordinatorSync(
                    core.bus,
                    core.snapshot,
                    section,
                    node=settings.agent.node,
                    identity=identity,
                    config_dir=self.config_dir,
                )
                for section in settings.coordinator
            ]
        )
        supervision = Supervision(Notifier(), core.bus, core.snapshot, coordinators.health)
        node = settings.agent.node
        metrics = MetricsSink(
            self._meters, core.bus, core.snapshot, coordinators.status,
            node=node, version=__version__,
        )  # fmt: skip
        inventory = Inventory(core.authority, adb_enabled=settings.adb.enabled)
        adb_server = settings.adb.server if settings.adb.enabled else None
        recovery = Recovery(
            core.authority,
            core.bus,
            settings.recovery,
            adb_server=adb_server,
            locate=inventory.syspath_of,
        )
        sessions = Sessions(
            core.authority,
            core.bus,
            Journal(core.store),
            settings.session,
            adb_server=adb_server,
            identity=identity,
            recover=lambda rid, why, say: recovery.recover(rid, why, say=say, session=True),
        )
        waitlist = Waitlist(core.registry, core.bus)
        reaper = Reaper(
            core.authority,
            settings.coordinator,
            node=settings.agent.node,
            interval=settings.agent.reap_interval,
            config_dir=self.config_dir,
            clock=core.clock,  # a lock's age, as its ``since`` counts: unmoved by a clock step
        )
        async with contextlib.AsyncExitStack() as stack:
            await _enter(stack, supervision, "systemd supervision")
            await _enter(stack, metrics, "metrics")
            # Before the sources: a phase a restart interrupted is finished first.
            await _enter(stack, recovery, "recovery")
            await _enter(stack, sessions, "sessions")
            await _enter(stack, waitlist, "waitlist")
            static = StaticSource(core.authority, settings.resource, core.snapshot)
            await _enter(stack, static, "static resources")
            if settings.udev.enabled:
                udev = UdevSource(inventory, settings.match, self._meters)
                await _enter(stack, udev, "UdevSource")
            adb = None
            if settings.adb.enabled:
                adb = AdbSource(
                    inventory, settings.adb, on_stuck=recovery.suspect, meters=self._meters
                )
                await _enter(stack, adb, "AdbSource")
            await _enter(stack, coordinators, "coordinator sync")
            await _enter(stack, reaper, "stale-lock reaper")
            await _enter(stack, access.allowlist, "JSON-RPC allowlist")
            app = make_app(
                core.authority,
                identity,
                coordinators,
                sessions=sessions,
                waitlist=waitlist,
                recovery=recovery,
                access=access,
                adb=adb,
                meters=self._meters,
                about=About(node, __version__, self._started),
            )
            server = settings.server
            where = server.listen + (f" and {server.tls_listen} (TLS)" if server.tls_listen else "")
            try:
                await stack.enter_async_context(
                    serving(app, listeners, limits_for(settings.server))
                )
            except OSError as exc:
                log.error("cannot listen on %s: %s", where, exc.strerror or exc)
                raise StartFailed("listener") from exc
            announce(access)
            log.info(
                "serving %d resources on %s (state in %s)",
                len(core.registry),
                where,
                self.state_dir,
            )
            supervision.ready()  # systemd: READY=1 only now that state and listener are up
            await self._stop.wait()
            log.info("stopping")
            supervision.stopping()

"""The composition root: builds every part from the settings and runs them."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from aiohttp import web

from agent.api.app import make_app
from agent.authority import Authority
from agent.config import Settings
from agent.coordinator.sync import Coordinators, CoordinatorSync
from agent.discovery.adb import AdbSource
from agent.discovery.inventory import Inventory
from agent.discovery.udev import UdevSource
from agent.events import EventBus
from agent.model import Description, Kind
from agent.notify import Notifier
from agent.registry import Registry
from agent.store import Store
from agent.supervision import Supervision

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part that runs beside the API: a source or a sink."""

    async def start(self) -> None:
        """Start; return once the part's initial work (a coldplug, say) is done."""

    async def stop(self) -> None:
        """Stop and release what it holds."""


def static_descriptions(settings: Settings) -> list[Description]:
    """The ``[[resource]]`` entries as source facts."""
    return [
        Description(
            id=r.id,
            name=r.name or r.id,
            kind=Kind.STATIC,
            description=r.description,
            metadata=dict(r.metadata),
        )
        for r in settings.resource
    ]


async def _start_all(components: Sequence[Component], started: list[Component]) -> bool:
    """Start each in turn; at the first that fails, say why and answer False.

    ``started`` gets each component before its start, so one that fails half
    way is stopped too, releasing what it took.
    """
    for component in components:
        started.append(component)
        try:
            await component.start()
        except Exception as exc:
            log.error(
                "cannot start %s, stopping: %s",
                type(component).__name__,
                str(exc) or type(exc).__name__,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return False
    return True


async def _stop_all(started: Sequence[Component]) -> None:
    """Stop in reverse order; one that fails to stop keeps none of the rest running."""
    for component in reversed(started):
        try:
            await component.stop()
        except Exception:
            log.exception("stopping %s failed", type(component).__name__)


class Daemon:
    """One agent: store, registry, authority, sources, sinks and the HTTP API."""

    def __init__(self, settings: Settings, state_dir: Path, config_dir: Path | None = None) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.config_dir = config_dir  # a relative token_file is beside the config (no systemd)
        self._stop = asyncio.Event()
        self._exit_code = 0

    def request_stop(self, exit_code: int = 0) -> None:
        """Begin an orderly shutdown."""
        self._exit_code = max(self._exit_code, exit_code)
        self._stop.set()

    def _fatal(self, exc: BaseException) -> None:
        self.request_stop(1)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or a fatal error (exit 1)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        clock = time.time
        store = Store(self.state_dir / "state.db", clock)
        registry = Registry(clock, grace=self.settings.agent.grace_period)
        registry.restore(store.load())
        store.start()
        authority = Authority(registry, store, EventBus(), clock, self._fatal)
        for desc in static_descriptions(self.settings):
            authority.describe(desc)
        authority.start()
        supervision = Supervision(Notifier(), registry.resources)
        supervision.start(authority.bus)
        inventory = Inventory(authority, adb_enabled=self.settings.adb.enabled)
        components: list[Component] = []
        # Sources are added here (udev, adb), then sinks (coordinator sync).
        if self.settings.udev.enabled:
            components.append(UdevSource(inventory, self.settings.match))
        if self.settings.adb.enabled:
            components.append(AdbSource(inventory, self.settings.adb))
        identity = self.settings.agent.client_identity
        coordinators = Coordinators(
            [
                CoordinatorSync(
                    authority, section, self.settings.agent.node, identity, self.config_dir
                )
                for section in self.settings.coordinator
            ]
        )
        components.append(coordinators)
        supervision.follow_coordinators(coordinators.states)
        runner = web.AppRunner(
            make_app(authority, identity, coordinators),
            handle_signals=False,
            access_log=None,
            # In-flight requests get this long to finish on SIGTERM (set on the
            # runner: TCPSite's own shutdown_timeout is deprecated in aiohttp 3.9+).
            shutdown_timeout=10.0,
        )
        started: list[Component] = []
        try:
            if not await _start_all(components, started):
                return 1
            await runner.setup()
            host, port = self.settings.server.address
            site = web.TCPSite(runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                log.error("cannot listen on %s: %s", self.settings.server.listen, exc.strerror)
                return 1
            log.info(
                "serving %d resources on %s (state in %s)",
                len(registry),
                self.settings.server.listen,
                self.state_dir,
            )
            supervision.ready()  # systemd: READY=1 only now that state and listener are up
            await self._stop.wait()
            log.info("stopping")
            supervision.stopping()
        finally:
            # Stop accepting and finish in-flight requests before the store closes.
            await runner.cleanup()
            await _stop_all(started)
            authority.stop()
            await store.close()
            await supervision.stop()
        return self._exit_code

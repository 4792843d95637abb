"""The recovery ladder: a stuck phone brought back in stages, gentle to forceful.

A phone is stuck when adb lists it ``offline`` for ``offline_after`` seconds,
when its shell stops answering (the adb source says so), or when a session's
step fails because the phone did not respond. Then, stopping at the first rung
that brings it back to adb ``device`` with a working shell:

1. **reconnect**: adb drops its connection to the phone and makes it again;
2. **soft replug**: the USB device's ``authorized`` switch off and on;
3. **power cycle**: the port's power off and on (its ``disable`` switch, or
   uhubctl) -- only when no other held or provisioning device hangs behind it;
4. **quarantine**: given up until an administrator enables it.

Rules: one ladder at a time per hub; ``backoff`` seconds between two ladders of
a device; at most ``max_per_hour`` ladders per device (then quarantine);
never while the phone is held, unless its holder's session asked. A hold keeps
its place while the phone re-enumerates: the grace period covers that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.authority import Authority
from agent.config import RecoverySection, parse_hostport
from agent.events import EventBus
from agent.lifecycle import Service
from agent.model import (
    AdbState,
    Event,
    Kind,
    Phase,
    Resource,
    Rung,
    RungOutcome,
    RungResult,
)
from agent.recovery.usb import port_of, uhubctl_cycle, write_switch
from agent.sessions import phone
from agent.sessions.phone import AdbLink, PhoneError

log = logging.getLogger(__name__)

HOUR = 3600.0
POLL = 0.25  # seconds between looks at a phone coming back


def _noop(text: str) -> None:
    """Where a ladder's lines go when no session runs."""


@dataclass
class _Device:
    """What the ladder remembers of one device."""

    ladders: deque[float] = field(default_factory=deque)  # when each recent ladder began
    last_end: float | None = None
    offline_timer: asyncio.TimerHandle | None = None
    running: asyncio.Task[bool] | None = None


class Recovery(Service):
    """Watches for stuck phones and climbs the ladder for each, one hub at a time."""

    def __init__(
        self,
        authority: Authority,
        bus: EventBus,
        settings: RecoverySection,
        *,
        adb_server: str | None,
        locate: Callable[[str], str | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # locate(id): the syspath of the resource's USB device, or None.
        self._authority = authority
        self._bus = bus
        self._settings = settings
        self._locate = locate
        self._clock = clock
        self._client: AdbLink | None = None
        if adb_server is not None:
            host, port = parse_hostport(adb_server)
            self._client = AdbLink(host, port, settings.probe_timeout)
        self._devices: dict[str, _Device] = {}
        self._hubs: dict[str, asyncio.Lock] = {}
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        """Watch for phones that stay offline."""
        if self._settings.enabled:
            self._unsubscribe = self._bus.subscribe(self._on_event)

    async def stop(self) -> None:
        """Stop watching; ladders under way stop where they are."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = []
        for device in self._devices.values():
            if device.offline_timer is not None:
                device.offline_timer.cancel()
            if device.running is not None:
                device.running.cancel()
                tasks.append(device.running)
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------- triggers

    def suspect(self, resource_id: str, reason: str) -> None:
        """A source finds the phone stuck: climb the ladder (in the background) if allowed."""
        if not self._settings.enabled:
            return
        device = self._device(resource_id)
        if device.running is None or device.running.done():
            device.running = asyncio.get_running_loop().create_task(
                self.recover(resource_id, reason), name=f"recover {resource_id}"
            )

    def _on_event(self, event: Event) -> None:
        res = event.resource
        device = self._devices.get(res.id)
        offline = res.present and res.metadata.get("adb-state") == AdbState.OFFLINE
        if not offline:
            if device is not None and device.offline_timer is not None:
                device.offline_timer.cancel()
                device.offline_timer = None
            return
        device = self._device(res.id)
        if device.offline_timer is None:
            device.offline_timer = asyncio.get_running_loop().call_later(
                self._settings.offline_after, self._offline_too_long, res.id
            )

    def _offline_too_long(self, resource_id: str) -> None:
        self._device(resource_id).offline_timer = None
        after = self._settings.offline_after
        self.suspect(resource_id, f"adb has listed it offline for {after:g} s")

    # --------------------------------------------------------------- ladder

    async def recover(
        self,
        resource_id: str,
        reason: str,
        *,
        say: Callable[[str], None] = _noop,
        session: bool = False,
        manual: bool = False,
    ) -> bool:
        """Climb the ladder for a stuck phone; True once it is back.

        ``say`` gets each line (a session's log); ``session``: its holder's
        session asks, so a hold does not stop it; ``manual``: an
        administrator asks, so the backoff does not either.
        """
        res = self._authority.registry.get(resource_id)
        device = self._device(resource_id)
        now = self._clock()
        why = self._refusal(res, device, now, session=session, manual=manual)
        if why is not None:
            self._say(res.id, say, f"recovery not tried: {why}")
            return False
        while device.ladders and device.ladders[0] <= now - HOUR:
            device.ladders.popleft()
        if len(device.ladders) >= self._settings.max_per_hour:
            count = len(device.ladders)
            await self._quarantine(
                res.id, f"{count} recoveries in the last hour; now: {reason}", say
            )
            return False
        device.ladders.append(now)
        syspath = self._locate(res.id)
        hub = port.hub if syspath and (port := port_of(syspath)) else res.id
        async with self._hubs.setdefault(hub, asyncio.Lock()):
            try:
                return await self._climb(res, reason, say)
            finally:
                device.last_end = self._clock()

    def _refusal(
        self, res: Resource, device: _Device, now: float, *, session: bool, manual: bool
    ) -> str | None:
        if not self._settings.enabled:
            return "[recovery] enabled = false"
        if res.kind is not Kind.ANDROID:
            return "only phones are recovered"
        if res.hold is not None and not session:
            return f"it is {res.state.value} by {res.hold.holder.url or res.hold.holder.id}"
        if res.phase is Phase.CLEANING and not session:
            return "its teardown is running"
        backoff = self._settings.backoff
        if device.last_end is not None and now < device.last_end + backoff and not manual:
            return f"the last recovery ended less than {backoff:g} s ago"
        return None

    async def _climb(self, res: Resource, reason: str, say: Callable[[str], None]) -> bool:
        self._say(res.id, say, f"the phone is stuck ({reason}): trying to bring it back")
        tried: list[str] = []
        for rung in (Rung.RECONNECT, Rung.REPLUG, Rung.POWER_CYCLE):
            outcome, detail = await self._rung(rung, res)
            self._say(res.id, say, f"recovery {rung.value}: {outcome.value}: {detail}")
            # In the history, the audit trail and the metrics, as every change is.
            await self._authority.recovery(res.id, RungResult(rung, outcome, detail))
            tried.append(f"{rung.value}: {outcome.value} ({detail})")
            if outcome is RungOutcome.RECOVERED:
                return True
        await self._quarantine(res.id, f"stuck ({reason}); tried " + "; ".join(tried), say)
        return False

    async def _quarantine(self, resource_id: str, why: str, say: Callable[[str], None]) -> None:
        self._say(resource_id, say, f"recovery {Rung.QUARANTINE.value}: {why}")
        await self._authority.quarantine(resource_id, why)

    async def _rung(self, rung: Rung, res: Resource) -> tuple[RungOutcome, str]:
        try:
            if rung is Rung.RECONNECT:
                detail = await self._reconnect(res.id)
            elif rung is Rung.REPLUG:
                syspath = self._locate(res.id)
                if syspath is None:
                    return RungOutcome.SKIPPED, "udev sees no USB device for it"
                await write_switch(_path(syspath, "authorized"), "0", "1")
                detail = f"{syspath}/authorized set to 0, then 1"
            else:
                skipped = self._neighbours(res.id)
                if skipped is not None:
                    return RungOutcome.SKIPPED, skipped
                detail = await self._power_cycle(res.id)
        except (OSError, PhoneError) as exc:
            return RungOutcome.FAILED, str(exc)
        except _Skip as skip:
            return RungOutcome.SKIPPED, str(skip)
        if await self._came_back(res.id):
            return RungOutcome.RECOVERED, detail
        return RungOutcome.FAILED, f"{detail}; still stuck after {self._settings.settle:g} s"

    async def _reconnect(self, serial: str) -> str:
        if self._client is None:
            raise _Skip("[adb] is not enabled")
        client, timeout = self._client, self._settings.probe_timeout
        answer = await asyncio.to_thread(phone.reconnect, client, serial, timeout)
        if ":" in serial:  # over TCP: the server may drop the phone instead of reconnecting
            answer += " " + await asyncio.to_thread(phone.connect, client, serial, timeout)
        return f"adb: {answer.strip() or 'OKAY'}"

    def _neighbours(self, resource_id: str) -> str | None:
        """Why the port may not be switched off: another device on the hub is in use.

        The whole hub counts, not only the port: many hubs switch the power of
        all their ports together, whatever is asked of one.
        """
        syspath = self._locate(resource_id)
        port = port_of(syspath) if syspath else None
        if port is None:
            return "udev sees no USB device for it"
        for other in self._authority.registry.resources():
            where = self._locate(other.id) if other.id != resource_id else None
            if where and where.startswith(port.hub + "/") and (other.hold or other.phase):
                return f"{other.id} on the same hub is {other.state.value}"
        return None

    async def _power_cycle(self, resource_id: str) -> str:
        syspath = self._locate(resource_id)
        port = port_of(syspath) if syspath else None
        assert port is not None
        if self._settings.uhubctl:
            out = await uhubctl_cycle(self._settings.uhubctl, port, self._settings.settle)
            return f"uhubctl cycled port {port.number} of hub {port.location}: {out[-120:]}"
        switch = port.disable_switch
        if not await asyncio.to_thread(switch.exists):
            raise _Skip(
                f"hub {port.hub_name} cannot switch port power (no {switch}); "
                "set [recovery] uhubctl for a hub that uhubctl knows"
            )
        await write_switch(switch, "1", "0")
        return f"{switch} set to 1, then 0"

    async def _came_back(self, resource_id: str) -> bool:
        """Whether the phone is back to adb "device" with a working shell within ``settle``.

        The adb server is asked directly: the agent's own view of the phone
        lags behind while the adb source reads a phone that came back.
        """
        if self._client is None:
            return False
        client, timeout = self._client, self._settings.probe_timeout
        deadline = self._clock() + self._settings.settle
        while self._clock() < deadline:
            try:
                listed = await asyncio.to_thread(phone.state, client, resource_id, timeout)
                if listed == AdbState.DEVICE:
                    probe = await asyncio.to_thread(
                        phone.shell, client, resource_id, "echo ok", timeout
                    )
                    if probe.output.strip() == "ok":
                        return True
            except PhoneError as exc:
                log.debug("%s: not back yet: %s", resource_id, exc)
            await asyncio.sleep(POLL)
        return False

    def _device(self, resource_id: str) -> _Device:
        return self._devices.setdefault(resource_id, _Device())

    def _say(self, resource_id: str, say: Callable[[str], None], text: str) -> None:
        log.warning("%s: %s", resource_id, text)
        say(text)


class _Skip(Exception):
    """A rung that cannot be tried here, and why."""


def _path(syspath: str, attribute: str) -> Path:
    return Path(syspath) / attribute

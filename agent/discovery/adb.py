"""Android phones as the adb server sees them: the adb source.

The adb server pushes its device list (``host:track-devices``) whenever it
changes; this source keeps one such stream open, so a phone's state change
reaches the inventory at once without polling (but see the gap below). When
the server is unreachable or restarts, the stream breaks: every adb fact is
withdrawn (the phones are unknown, not usable, while nobody can ask adb) and
the source reconnects with exponential backoff; the new server's first list
puts them back under the same ids, so no resource is doubled or lost, and
holds survive (a vanished resource keeps its hold through the grace period).

The stream has one known gap with older servers: adb 29 (Debian 12's) does
not push the change when a TCP phone drops to ``offline`` (it lists it so, but
tells no tracker). The adb the agent's adb unit runs (``resource-agent
adb-server``, platform-tools 36) pushes it, but ``[adb] server`` may name
another. So a failed read of a phone is taken as a hint that the list may
have changed unannounced, and the list is asked for once (``host:devices``)
and applied like a pushed one -- unless a push came in meanwhile, which is
fresher. While a TCP phone is usable, the list is also rechecked every
``tcp_recheck`` seconds, which bounds how long a dead one can look usable;
USB phones need no such check (their unplugging is pushed).

Every adb state is reported as it is. A phone in ``device`` state is first
read -- ``getprop`` for its identity, ``dumpsys battery`` for its charge --
and only then reported usable, with those facts as metadata; the battery is
read again every ``[adb] battery_interval``. A read that fails (the phone went
away, a timeout, output that is not what a phone prints) is logged and the
phone is reported with what is known; nothing a phone does stops the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Callable, Iterable, Mapping

from agent.android import parse_battery, parse_getprop
from agent.config import AdbSection, parse_hostport
from agent.discovery.adb_host import AdbHost, AdbHostError
from agent.discovery.inventory import AdbFacts, Inventory
from agent.lifecycle import Service
from agent.meters import Meters
from agent.model import ID_PATTERN, AdbState

log = logging.getLogger(__name__)

# Metadata name -> the properties that may hold it, best first (Android 10+
# moved some ro.product.* values to partition-specific names).
PROPS: dict[str, tuple[str, ...]] = {
    "manufacturer": ("ro.product.manufacturer", "ro.product.vendor.manufacturer"),
    "model": ("ro.product.model", "ro.product.vendor.model"),
    "device": ("ro.product.device", "ro.product.vendor.device"),
    "android-release": ("ro.build.version.release",),
    "sdk": ("ro.build.version.sdk",),
    "abi": ("ro.product.cpu.abi",),
    "fingerprint": ("ro.build.fingerprint", "ro.vendor.build.fingerprint"),
}
_STATES = frozenset(s.value for s in AdbState)
MAX_VALUE = 200  # metadata values travel to Jenkins and into environment variables
STARTUP_TIMEOUT = 10.0
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0
TCP_RECHECK = 30.0
STABLE_AFTER = 10.0  # a connection this old resets the backoff when it breaks
PARALLEL_READS = 8  # gentle on the adb server when many phones appear at once

_ID = re.compile(ID_PATTERN)
_READ_ERRORS = (OSError, EOFError, AdbHostError, ValueError)


def clean_value(value: str) -> str:
    """A property value fit for metadata: printable, trimmed, bounded."""
    return "".join(ch for ch in value if ch.isprintable()).strip()[:MAX_VALUE]


def props_metadata(props: Mapping[str, str]) -> dict[str, str]:
    """The metadata a phone's properties give (names absent when the phone has no value)."""
    metadata: dict[str, str] = {}
    for name, candidates in PROPS.items():
        for prop in candidates:
            value = clean_value(props.get(prop, ""))
            if value:
                metadata[name] = value
                break
    return metadata


def display_name(serial: str, metadata: Mapping[str, str]) -> str:
    """ "Google Pixel 7" when the properties say so, else the serial."""
    model = metadata.get("model", "")
    maker = metadata.get("manufacturer", "")
    if not model:
        return serial
    if maker and not model.lower().startswith(maker.lower()):
        return f"{maker} {model}"
    return model


def is_remote(serial: str) -> bool:
    """Whether adb reaches the device over the network (``host:port`` or an mDNS name)."""
    return ":" in serial or serial.endswith("._tcp") or "._adb-tls-" in serial


def _unheard(serial: str, why: str) -> None:
    """Where stuck phones are reported when nobody recovers them."""


class _Phone:
    """What the source knows of one listed serial."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.state = ""
        self.metadata: dict[str, str] = {}  # kept while listed, whatever the state
        self.watcher: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # first report made in this state


class AdbSource(Service):
    """Follows the adb server's device list and reports it to the inventory."""

    def __init__(
        self,
        inventory: Inventory,
        settings: AdbSection,
        read_timeout: float | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        tcp_recheck: float = TCP_RECHECK,
        *,
        on_stuck: Callable[[str, str], None] = _unheard,
        meters: Meters | None = None,
    ) -> None:
        # on_stuck(serial, why): a listed phone whose shell does not answer.
        host, port = parse_hostport(settings.server)
        self._on_stuck = on_stuck
        self._host = AdbHost(host, port)
        self._inventory = inventory
        self._meters = meters
        self._allow_remote = settings.allow_remote
        self._battery_interval = settings.battery_interval
        self._read_timeout = settings.read_timeout if read_timeout is None else read_timeout
        self._startup_timeout = startup_timeout
        self._tcp_recheck = tcp_recheck
        self._reads = asyncio.Semaphore(PARALLEL_READS)
        self._phones: dict[str, _Phone] = {}
        self._ignored: set[str] = set()  # listed serials not reported (logged once)
        self._connected = False
        self._ever_connected = False
        self._generation = 0  # device lists applied; a recheck older than a push is stale
        self._recheck_task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # the first list was applied, or connecting failed
        self._task: asyncio.Task[None] | None = None
        self._tcp_task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Whether the adb server answers now (health reports when it does not)."""
        return self._connected

    @property
    def server(self) -> str:
        """``host:port`` of the adb server."""
        return str(self._host)

    async def start(self) -> None:
        """Start following; return after the first list (and its reads), or when adb is away."""
        self._task = asyncio.create_task(self._follow(), name="adb-source")
        self._tcp_task = asyncio.create_task(self._watch_tcp(), name="adb-tcp-recheck")
        try:
            async with asyncio.timeout(self._startup_timeout):
                await self._attempted.wait()
                waiting = [
                    p.ready.wait() for p in self._phones.values() if p.state == AdbState.DEVICE
                ]
                await asyncio.gather(*waiting)
        except TimeoutError:
            log.warning(
                "adb: the first device list and its phones took longer than %g s to read; "
                "carrying on (phones are reported as they are read)",
                self._startup_timeout,
            )

    async def stop(self) -> None:
        """Stop following and reading; the facts already reported stay as they are."""
        tasks = [p.watcher for p in self._phones.values() if p.watcher is not None]
        tasks += [t for t in (self._task, self._tcp_task, self._recheck_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ following

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        delay = BACKOFF_FIRST
        failures = 0  # attempts since the last connection, for the logs
        while True:
            connected_at: float | None = None
            try:
                lists = self._host.track_devices(self._read_timeout)
                async with contextlib.aclosing(lists):
                    async for devices in lists:
                        if not self._connected:
                            self._on_connected()
                            failures, connected_at = 0, loop.time()
                        self._generation += 1
                        self._apply(devices)
                        self._attempted.set()
                raise AdbHostError("the server ended the device list")
            except (OSError, EOFError, AdbHostError) as exc:
                self._on_lost(exc, failures)
            except Exception:  # a bug here must not silence every phone for good
                log.exception("adb: unexpected error following the device list")
                self._on_lost(None, failures)
            failures += 1
            if connected_at is not None and loop.time() - connected_at >= STABLE_AFTER:
                delay = BACKOFF_FIRST  # a server that breaks at once is not retried at once
            self._attempted.set()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_MAX)

    def _on_connected(self) -> None:
        if self._ever_connected:
            log.info("adb: the server at %s answers again", self._host)
        else:
            log.info("adb: following the device list of the server at %s", self._host)
        self._connected = self._ever_connected = True
        self._inventory.adb_connected(True)

    def _on_lost(self, exc: BaseException | None, failures: int) -> None:
        reason = _reason(exc) if exc is not None else "internal error"
        if self._connected:
            log.warning("adb: lost the server at %s (%s); reconnecting", self._host, reason)
        elif failures == 0:
            log.warning("adb: no server at %s (%s); retrying in the background", self._host, reason)
        else:
            log.debug("adb: still no server at %s (%s)", self._host, reason)
        self._connected = False
        # Nobody can ask adb now: its facts are unknown, so they are withdrawn.
        for phone in self._phones.values():
            _cancel(phone)
        self._phones.clear()
        self._ignored.clear()
        self._inventory.adb_snapshot([])
        self._inventory.adb_connected(False)

    def _apply(self, devices: Iterable[tuple[str, str]]) -> None:
        listed: dict[str, str] = {}
        ignored: set[str] = set()
        for serial, state in devices:
            if not _ID.match(serial):
                if serial not in self._ignored:
                    log.warning("adb: ignoring %r: not usable as a resource id", serial)
                ignored.add(serial)
            elif is_remote(serial) and not self._allow_remote:
                if serial not in self._ignored:
                    log.info("adb: ignoring %s: adb over TCP needs [adb] allow_remote", serial)
                ignored.add(serial)
            else:
                listed[serial] = state
        self._ignored = ignored
        for serial in [s for s in self._phones if s not in listed]:
            log.info("adb: %s is no longer listed", serial)
            self._count("gone")
            _cancel(self._phones.pop(serial))
            self._inventory.adb_removed(serial)
        for serial, state in listed.items():
            phone = self._phones.get(serial)
            if phone is None:
                phone = self._phones[serial] = _Phone(serial)
            if phone.state == state:
                continue
            log.info("adb: %s is %s", serial, state)
            self._count(state)
            _cancel(phone)
            phone.state = state
            phone.ready = asyncio.Event()
            if state == AdbState.DEVICE:
                phone.watcher = asyncio.create_task(self._watch(phone), name=f"adb-{serial}")
            else:
                self._report(phone)

    def _count(self, state: str) -> None:
        if self._meters is not None:
            # A word this agent does not know counts as unknown: labels stay a closed set.
            known = state if state == "gone" or state in _STATES else AdbState.UNKNOWN
            self._meters.adb_events.labels(known).inc()

    # -------------------------------------------------------------- reading

    async def _watch(self, phone: _Phone) -> None:
        """Read a usable phone, report it, then refresh its battery on the interval."""
        ready = phone.ready  # this state's; a later state has its own
        try:
            have_props = await self._read_props(phone)
            have_battery = await self._read_battery(phone)
            self._report(phone)
            while True:
                if not (have_props and have_battery):
                    self._recheck()
                await asyncio.sleep(self._battery_interval)
                if not have_props:
                    have_props = await self._read_props(phone)
                have_battery = await self._read_battery(phone)
                self._report(phone)
        finally:
            ready.set()

    async def _watch_tcp(self) -> None:
        """Recheck the list now and then while a TCP phone is usable (see the module doc)."""
        while True:
            await asyncio.sleep(self._tcp_recheck)
            if any(p.state == AdbState.DEVICE and is_remote(s) for s, p in self._phones.items()):
                self._recheck()

    def _recheck(self) -> None:
        """Ask adb for its list once, in case a change went unannounced."""
        if self._recheck_task is None or self._recheck_task.done():
            self._recheck_task = asyncio.create_task(self._recheck_list(), name="adb-recheck")

    async def _recheck_list(self) -> None:
        generation = self._generation
        try:
            devices = await self._host.devices(self._read_timeout)
        except _READ_ERRORS as exc:
            log.debug("adb: cannot recheck the device list: %s", _reason(exc))
            return
        if self._connected and generation == self._generation:
            self._generation += 1
            self._apply(devices)

    async def _read_props(self, phone: _Phone) -> bool:
        try:
            props = parse_getprop(await self._shell(phone.serial, "getprop"))
            if not props:
                raise ValueError("getprop printed no properties")
        except _READ_ERRORS as exc:
            log.warning("adb: cannot read the properties of %s: %s", phone.serial, _reason(exc))
            return False
        phone.metadata.update(props_metadata(props))
        return True

    async def _read_battery(self, phone: _Phone) -> bool:
        try:
            level = parse_battery(await self._shell(phone.serial, "dumpsys battery"))
        except _READ_ERRORS as exc:
            log.warning("adb: cannot read the battery of %s: %s", phone.serial, _reason(exc))
            if isinstance(exc, TimeoutError):
                self._on_stuck(
                    phone.serial, f"its shell did not answer in {self._read_timeout:g} s"
                )
            return False
        phone.metadata["battery"] = str(level)
        return True

    async def _shell(self, serial: str, command: str) -> str:
        async with self._reads:
            return await self._host.shell(serial, command, self._read_timeout)

    def _report(self, phone: _Phone) -> None:
        self._inventory.adb_changed(
            AdbFacts(
                serial=phone.serial,
                state=phone.state,
                name=display_name(phone.serial, phone.metadata),
                metadata=dict(phone.metadata),
            )
        )
        phone.ready.set()


def _cancel(phone: _Phone) -> None:
    if phone.watcher is not None:
        phone.watcher.cancel()
        phone.watcher = None
    phone.ready.set()  # nobody should wait for a report that will not come


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, EOFError):
        return "connection closed"
    return str(exc) or type(exc).__name__

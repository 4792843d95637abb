"""Where JSON-RPC may come from: ``[server] jsonrpc_allow``, host names resolved again and again.

Jenkins sends no credentials with its calls, so the only thing that tells it
from anyone else is its address. The default allows this machine and every
configured coordinator's host; another Jenkins is allowed by adding its host
name (or address) to the list. Host names are resolved at start and then every
``RESOLVE_EVERY`` seconds, so a Jenkins that moves keeps its access; a name
that does not resolve keeps the addresses it had (none at first), and says so
in the log once per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from agent.addresses import COORDINATORS, Address, Network, ip_of, parse_allow
from agent.config import DEFAULT_JSONRPC_ALLOW
from agent.lifecycle import Service

log = logging.getLogger(__name__)

RESOLVE_EVERY = 60.0
RESOLVE_TIMEOUT = 5.0  # per round; at start too, so a dead DNS cannot hold the start up
VERDICTS = 4096  # peers whose answer is remembered (parsing an address costs more than a call)
HOW_TO_ALLOW = (
    "to let another Jenkins call, add its host name or address to [server] jsonrpc_allow "
    f"(the default is {list(DEFAULT_JSONRPC_ALLOW)})"
)


def expand(entries: Iterable[str], coordinator_urls: Iterable[str]) -> list[str]:
    """The entries with ``coordinators`` replaced by each coordinator url's host."""
    out: list[str] = []
    for entry in entries:
        if entry == COORDINATORS:
            out += [h for u in coordinator_urls if (h := urlsplit(u).hostname) is not None]
        else:
            out.append(entry)
    return list(dict.fromkeys(out))


class Allowlist(Service):
    """The addresses JSON-RPC is answered from."""

    def __init__(self, entries: Sequence[str], interval: float = RESOLVE_EVERY) -> None:
        self._networks: list[Network] = []
        self._names: list[str] = []
        for entry in entries:
            parsed = parse_allow(entry)
            if isinstance(parsed, str):
                self._names.append(parsed)
            else:
                self._networks.append(parsed)
        self._resolved: dict[str, frozenset[Address]] = {n: frozenset() for n in self._names}
        self._failing: set[str] = set()
        self._verdicts: dict[str, bool] = {}  # by peer address; cleared when a name moves
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def allows(self, address: str | None) -> bool:
        """Whether a call from ``address`` is answered."""
        if not address:
            return False
        verdict = self._verdicts.get(address)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS:
                self._verdicts.clear()
            verdict = self._verdicts[address] = self._judge(address)
        return verdict

    def _judge(self, address: str) -> bool:
        ip = ip_of(address)
        if ip is None:
            return False
        if any(ip in net for net in self._networks):
            return True
        return any(ip in addrs for addrs in self._resolved.values())

    def unresolved(self) -> list[str]:
        """The host names that have no address (yet)."""
        return [name for name in self._names if not self._resolved[name]]

    def describe(self) -> str:
        """``127.0.0.0/8, ::1, jenkins.example (10.0.0.5)``: what is allowed now."""
        parts = [str(net) for net in self._networks]
        for name in self._names:
            addrs = ", ".join(sorted(str(a) for a in self._resolved[name])) or "unresolved"
            parts.append(f"{name} ({addrs})")
        return ", ".join(parts) or "nowhere"

    async def start(self) -> None:
        """Resolve the host names once (bounded), then again every interval."""
        if not self._names:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                await self.resolve()
        self._task = asyncio.create_task(self._again(), name="jsonrpc-allow resolver")

    async def stop(self) -> None:
        """Stop resolving."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _again(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    await self.resolve()

    async def resolve(self) -> None:
        """Look every host name up now; a failure keeps what the name had."""
        await asyncio.gather(*(self._resolve(name) for name in self._names))

    async def _resolve(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            if name not in self._failing:
                self._failing.add(name)
                kept = ", ".join(sorted(map(str, self._resolved[name]))) or "none"
                log.warning("jsonrpc_allow: cannot resolve %s (%s); keeping its addresses: %s",
                            name, exc.strerror or exc, kept)  # fmt: skip
            return
        addrs = frozenset(ip for info in infos if (ip := ip_of(str(info[4][0]))) is not None)
        if name in self._failing:
            self._failing.discard(name)
            log.info("jsonrpc_allow: %s resolves again", name)
        if addrs != self._resolved[name]:
            if self._resolved[name]:  # the first resolution is in the start-up line
                log.info("jsonrpc_allow: %s is now %s", name, ", ".join(sorted(map(str, addrs))))
            self._resolved[name] = addrs
            self._verdicts.clear()

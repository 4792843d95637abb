"""Slow clients, the slow-loris way, and Jenkins' Reserve latency beside them.

``SlowClients`` keeps ``count`` connections from one source address open,
each sending its request header a byte at a time and never finishing it; a
connection the agent closes is opened again ``RETRY`` seconds later (forty
slow connections kept up, not a flood of new ones). It counts how the agent
got rid of them. ``reserve_latencies`` times Jenkins' Reserve calls the way
Jenkins makes them: the jsonrpc4j stand-in, one fresh connection per call.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

from tests.fakes.jsonrpc4j import JsonRpc4jClient

PARTIAL = b"POST / HTTP/1.1\r\nHost: agent\r\n"
RETRY = 0.1
TRICKLE = 0.2  # seconds between the bytes of a slow header


class SlowClients(threading.Thread):
    """``count`` slow connections from ``source`` to 127.0.0.1:``port`` until ``stop`` is set."""

    def __init__(self, port: int, source: str, count: int, quick: float) -> None:
        """``quick``: a connection closed sooner than this was refused, later it was cut."""
        super().__init__(daemon=True, name=f"slow clients from {source}")
        self.port, self.source, self.count, self.quick = port, source, count, quick
        self.stop = threading.Event()
        self.refused = 0  # answered 503 or closed at once
        self.cut = 0  # closed by the agent after trickling for a while
        self.longest = 0.0  # the longest a slow connection was kept
        self._again: list[float] = []  # when to open a closed connection again

    def _open(self, sel: selectors.BaseSelector) -> None:
        sock = socket.create_connection(
            ("127.0.0.1", self.port), timeout=10, source_address=(self.source, 0)
        )
        sock.setblocking(False)
        sock.send(PARTIAL)
        sel.register(sock, selectors.EVENT_READ, time.monotonic())

    def _closed(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        lived = time.monotonic() - key.data
        self.longest = max(self.longest, lived)
        if lived < self.quick:
            self.refused += 1
        else:
            self.cut += 1
        sel.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
        self._again.append(time.monotonic() + RETRY)

    def run(self) -> None:
        """Keep the slow connections up until stopped."""
        sel = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(sel)
        trickled = time.monotonic()
        while not self.stop.is_set():
            for key, _ in sel.select(0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                data = b""
                with contextlib.suppress(OSError):
                    data = sock.recv(4096)
                if not data or data.startswith(b"HTTP/1.1 503"):
                    self._closed(sel, key)
            while self._again and self._again[0] <= time.monotonic():
                self._again.pop(0)
                self._open(sel)
            if time.monotonic() - trickled > TRICKLE:
                trickled = time.monotonic()
                for key in list(sel.get_map().values()):
                    with contextlib.suppress(OSError):
                        key.fileobj.send(b"X")  # type: ignore[union-attr]
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


def reserve_latencies(url: str, resource: str, calls: int) -> list[float]:
    """Seconds each of ``calls`` Reserves took (each released after, untimed), sorted."""
    jenkins = JsonRpc4jClient(url)
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        result = jenkins.reserve(resource, 60, "job/phone-tests/")
        took.append(time.perf_counter() - began)
        assert result.ok, result
        jenkins.release(resource, result.key, "job/phone-tests/")
    return sorted(took)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of them lie (nearest rank)."""
    return sorted_values[max(0, round(fraction * len(sorted_values)) - 1)]

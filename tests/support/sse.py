"""A server-sent event reader for tests: one connection to ``/api/events``, events as they come."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Sse:
    """One event: its id, name and parsed JSON data."""

    id: str
    event: str
    data: Any


class EventReader:
    """``GET /api/events`` on its own connection; ``next()`` reads one event."""

    def __init__(
        self, url: str, last_id: str | None = None, path: str = "/api/events", timeout: float = 5
    ) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        self._conn.request("GET", path, headers=headers)
        self.response = self._conn.getresponse()
        self.retry: int | None = None

    def next(self) -> Sse:
        """The next event (comments and ``retry`` lines are taken in passing)."""
        fields: dict[str, str] = {}
        while True:
            raw = self.response.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in fields:
                    return Sse(fields.get("id", ""), fields.get("event", "message"),
                               json.loads(fields["data"]))  # fmt: skip
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            if name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

    def until(self, wanted: str, count: int = 50) -> Sse:
        """Skip events until one named ``wanted`` (at most ``count`` of them)."""
        for _ in range(count):
            sse = self.next()
            if sse.event == wanted:
                return sse
        raise AssertionError(f"no {wanted!r} event among the next {count}")

    def silent_for(self, seconds: float) -> bool:
        """Whether no event arrives within ``seconds``."""
        sock = self._conn.sock
        assert sock is not None
        sock.settimeout(seconds)
        try:
            self.next()
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        """Hang up."""
        self._conn.close()

    def __enter__(self) -> EventReader:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

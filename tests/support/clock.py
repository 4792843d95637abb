"""A clock that moves only when told to, and a local time zone for a while."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


class FakeClock:
    """Callable like ``time.time``; ``advance`` moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


@contextlib.contextmanager
def local_zone(name: str) -> Iterator[None]:
    """The process' local time zone is ``name`` (an IANA name) until the block ends."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()

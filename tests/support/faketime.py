"""A wall clock to step at will, for an agent process: libfaketime reading an offset from a file.

``FakeWallClock.env()`` is the agent's environment: libfaketime preloaded,
reading its offset from a file on every call (so a step takes effect at
once), and leaving the monotonic clocks alone (``FAKETIME_DONT_FAKE_MONOTONIC``:
CLOCK_MONOTONIC and CLOCK_BOOTTIME go on as the kernel counts them). ``step``
moves the agent's wall clock by that many seconds, as NTP or a person with
``date -s`` would. It takes umockdev's preload library out of the agent's
environment: with a timestamp file, the two hang a process at its start
(seen here), and an agent whose clock is stepped needs no udev.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

LIBRARY = "/usr/lib/*/faketime/libfaketimeMT.so.1"  # the multi-threaded build (apt: faketime)


class FakeWallClock:
    """The wall clock of the processes given ``env()``: the real one plus ``offset`` seconds."""

    def __init__(self, directory: Path) -> None:
        found = sorted(glob.glob(LIBRARY))
        assert found, f"libfaketime is not installed ({LIBRARY}; make test installs faketime)"
        self.library = found[0]
        self.file = directory / "faketime"
        self.offset = 0
        self._write()

    def env(self) -> dict[str, str | None]:
        """What the agent's environment needs (AgentProcess ``env``)."""
        return {
            "LD_PRELOAD": self.library,
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def step(self, seconds: int) -> None:
        """Step the wall clock by ``seconds`` (back if negative), at once."""
        self.offset += seconds
        self._write()

    def now(self) -> float:
        """The agent's wall clock now."""
        return time.time() + self.offset

    def _write(self) -> None:
        # Replaced whole: libfaketime reads it at every call, and must never see half a file.
        part = self.file.with_suffix(".part")
        part.write_text(f"{self.offset:+d}\n")
        part.replace(self.file)

"""The agent's clock: holds run out by the monotonic clock, answers tell the wall clock's time.

A reservation of 300 s must last 300 s even if NTP or an administrator steps
the wall clock meanwhile. So the registry counts in *agent seconds*: seconds
since the epoch that move with the kernel's ``CLOCK_BOOTTIME`` (monotonic,
suspend included) and never jump. At their anchor they equal the wall clock;
after a step of the wall clock the two differ by the step, and every time the
agent shows -- to Jenkins or to a person -- is turned back into wall-clock
time (``wall``).

Deadlines are stored in agent seconds, and so is the anchor (the boot's id,
``CLOCK_BOOTTIME`` and agent seconds at one instant). The next start in the
same boot continues the very same line, so a step of the wall clock while the
agent ran or was down changes no deadline. After a reboot ``CLOCK_BOOTTIME``
starts again from zero and the wall clock is all there is: the new anchor is
the wall clock's time, but never earlier than the last time the agent saved
(a wall clock that went back while the machine was off must not lengthen a
hold).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boottime() -> float:
    """Seconds since the machine booted, suspend included: monotonic, never stepped."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id() -> str:
    """This boot's id (a new one at every boot), or "" where the kernel does not say."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Anchor:
    """One instant on both clocks: ``boottime`` in boot ``boot`` was ``agent`` agent seconds."""

    boot: str
    boottime: float
    agent: float

    def dumps(self) -> str:
        """As stored (JSON)."""
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str | None) -> Anchor | None:
        """As stored; None for nothing or anything unreadable (a fresh anchor is taken)."""
        try:
            data = json.loads(text or "")
            return cls(str(data["boot"]), float(data["boottime"]), float(data["agent"]))
        except (ValueError, TypeError, KeyError):
            return None


def as_is(at: float) -> float:
    """The wall clock's time for ``at`` where the registry runs on the wall clock itself."""
    return at


class AgentClock:
    """Callable like ``time.time``, but steady: agent seconds along the anchor's line."""

    def __init__(
        self,
        anchor: Anchor,
        *,
        steady: Callable[[], float] = boottime,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.anchor = anchor
        self._steady = steady
        self._wall = wall

    def __call__(self) -> float:
        """Now, in agent seconds."""
        return self.anchor.agent + (self._steady() - self.anchor.boottime)

    def wall(self, at: float) -> float:
        """The wall clock's time for the agent's ``at``: what answers and pages show."""
        return at + (self._wall() - self())


def resume(
    stored: Anchor | None,
    floor: float | None,
    *,
    boot: str | None = None,
    steady: Callable[[], float] = boottime,
    wall: Callable[[], float] = time.time,
) -> AgentClock:
    """The clock that goes on from ``stored`` in this boot; else a new one from the wall clock.

    ``floor``: the latest agent time the store has seen (None: none); a new
    anchor never starts before it.
    """
    boot = boot_id() if boot is None else boot
    if stored is not None and boot and stored.boot == boot:
        return AgentClock(stored, steady=steady, wall=wall)
    start = wall() if floor is None else max(wall(), floor)
    return AgentClock(Anchor(boot, steady(), start), steady=steady, wall=wall)

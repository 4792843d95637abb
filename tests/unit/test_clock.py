"""The agent's clock: steady through steps of the wall clock, continued across restarts.

Fake monotonic and wall clocks here; tests/integration/test_fault_clock.py steps
the real wall clock of a real agent with faketime.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.clock import AgentClock, Anchor, boot_id, boottime, resume
from agent.core import CLOCK_ANCHOR, STATE_FILE, build_core
from tests.support.clock import FakeClock

BOOT = "6b1f7c44-0000-4000-8000-000000000001"


def test_a_step_of_the_wall_clock_moves_the_wall_time_not_the_agents() -> None:
    steady, wall = FakeClock(100.0), FakeClock(1_800_000_000.0)
    clock = AgentClock(Anchor(BOOT, 100.0, 1_800_000_000.0), steady=steady, wall=wall)
    deadline = clock() + 300  # a reservation of 300 s
    wall.advance(3600)  # NTP (or a person) steps the wall clock an hour ahead
    steady.advance(10)
    assert clock() == 1_800_000_010.0  # ten seconds passed, not an hour
    assert deadline - clock() == 290
    # Shown as the wall clock has it: 290 s after the wall clock's now.
    assert clock.wall(deadline) == wall() + 290
    wall.advance(-7200)  # and back, an hour behind
    assert clock() == 1_800_000_010.0
    assert clock.wall(deadline) == wall() + 290


def test_the_same_boot_goes_on_along_the_same_line() -> None:
    steady = FakeClock(500.0)
    stored = Anchor(BOOT, 100.0, 1_800_000_000.0)
    # The wall clock was stepped back while the agent was down: nothing of it counts.
    clock = resume(stored, floor=1_800_000_350.0, boot=BOOT, steady=steady, wall=lambda: 1.0e9)
    assert clock.anchor == stored
    assert clock() == 1_800_000_400.0


def test_after_a_reboot_the_wall_clock_is_taken_but_never_before_the_floor() -> None:
    steady = FakeClock(3.0)  # CLOCK_BOOTTIME starts again at every boot
    stored = Anchor("an-earlier-boot", 100.0, 1_800_000_000.0)
    clock = resume(stored, floor=1_800_000_350.0, boot=BOOT, steady=steady,
                   wall=lambda: 1_800_000_900.0)  # fmt: skip
    assert clock.anchor == Anchor(BOOT, 3.0, 1_800_000_900.0)
    # A wall clock behind the last saved time (a dead RTC) must not lengthen holds.
    behind = resume(stored, floor=1_800_000_350.0, boot=BOOT, steady=steady, wall=lambda: 1e9)
    assert behind() == 1_800_000_350.0
    assert resume(None, floor=None, boot=BOOT, steady=steady, wall=lambda: 5e8)() == 5e8


def test_anchor_as_stored() -> None:
    anchor = Anchor(BOOT, 12.5, 1_800_000_000.25)
    assert Anchor.loads(anchor.dumps()) == anchor
    for junk in (
        None,
        "",
        "{",
        "[]",
        '{"boot": "x"}',
        '{"boot": "x", "boottime": "a", "agent": 1}',
    ):
        assert Anchor.loads(junk) is None


def test_this_machine_has_a_boot_id_and_a_boottime() -> None:
    assert len(boot_id()) == 36
    assert 0 < boottime() < boottime() + 1


async def test_the_store_keeps_the_anchor_and_a_restart_continues_it(tmp_path: Path) -> None:
    async with build_core(tmp_path) as core:
        first = core.clock()
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    try:
        (text,) = conn.execute("SELECT value FROM meta WHERE name=?", (CLOCK_ANCHOR,)).fetchone()
    finally:
        conn.close()
    anchor = Anchor.loads(text)
    assert anchor is not None and anchor.boot == boot_id()
    async with build_core(tmp_path) as core:
        # The same line: the anchor is not taken again (nor written) within one boot.
        assert isinstance(core.clock, AgentClock) and core.clock.anchor == anchor
        assert core.clock() >= first

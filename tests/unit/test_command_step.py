"""A command step: output into the log line by line, exit status, and a timeout that kills
the program with everything it started."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from agent.sessions.command import CommandFailed, run_command
from tests.support.waiting import wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent, the shell, was killed first).
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


async def test_output_lines_reach_the_log_in_order() -> None:
    lines: list[str] = []
    await run_command(["sh", "-c", "echo one; echo two >&2; printf three"], {}, 5, lines.append)
    assert lines == ["one", "two", "three"]


async def test_the_environment_is_exactly_the_one_given() -> None:
    lines: list[str] = []
    await run_command(["/usr/bin/env"], {"RESOURCE_ID": "b1"}, 5, lines.append)
    assert lines == ["RESOURCE_ID=b1"]


async def test_a_non_zero_exit_fails_naming_the_status() -> None:
    with pytest.raises(CommandFailed, match="exited with status 3"):
        await run_command(["sh", "-c", "exit 3"], {}, 5, lambda _: None)


async def test_a_program_that_cannot_run_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match=f"cannot run {tmp_path}/nope"):
        await run_command([str(tmp_path / "nope")], {}, 5, lambda _: None)


async def test_running_over_the_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The child ignores SIGTERM: only the SIGKILL that follows takes it down.
    script = f"(trap '' TERM; sleep 60) & echo $! > {pids}; echo $$ >> {pids}; sleep 60"
    lines: list[str] = []
    began = time.monotonic()
    with pytest.raises(
        CommandFailed, match=r"ran over its 0\.5 s and was killed with its children"
    ):
        await run_command(["sh", "-c", script], {"PATH": os.environ["PATH"]}, 0.5, lines.append)
    took = time.monotonic() - began
    assert took < 30, took  # not the 60 s the children would have run: they were killed
    child, shell = (int(p) for p in pids.read_text().split())
    # SIGKILL was sent; the kernel takes a moment to finish them off.
    wait_for(lambda: not alive(child) and not alive(shell), timeout=5, what="the group to die")


async def test_cancelled_while_starting_it_stops_the_group_at_once() -> None:
    # The agent stopping as a step starts must not wait for the step's program: one
    # turn of the loop forks the program, and the cancel lands before its pipes are ours.
    task = asyncio.ensure_future(
        run_command(["sh", "-c", "sleep 60; true"], dict(os.environ), 60, print)
    )
    await asyncio.sleep(0)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 5

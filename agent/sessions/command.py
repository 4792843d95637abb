"""A ``command`` step: one program in its own process group, its output into the log.

The program gets no terminal and no stdin; stdout and stderr are read line by
line into the session log as they come. When it runs over its timeout, or the
session is cancelled, the whole group -- the program and everything it started
-- gets SIGTERM, then SIGKILL two seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence

TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
MAX_LINE = 4096  # longer lines are cut: a log line, not a dump


class CommandFailed(Exception):
    """The program could not run, ran over its time, or exited non-zero."""


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), TERM_GRACE)
    _kill_group(proc.pid, signal.SIGKILL)  # stragglers that ignored SIGTERM, or outlived the leader
    await proc.wait()


async def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], None],
) -> None:
    """Run ``argv``; every output line goes to ``on_line``. CommandFailed unless it exits 0."""
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # its own process group, to kill it whole
            limit=MAX_LINE * 4,
        )
    )
    try:
        # Shielded: asyncio cancelled mid-start kills the program alone and then
        # waits for whatever it started to close its output -- possibly forever.
        proc = await asyncio.shield(starting)
    except OSError as exc:
        raise CommandFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    except asyncio.CancelledError:
        with contextlib.suppress(OSError):
            await _stop(await starting)
        raise
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    raw = await proc.stdout.readline()
                except ValueError:  # a line longer than the buffer: take what is there
                    raw = await proc.stdout.read(MAX_LINE)
                if not raw:
                    break
                on_line(raw.decode(errors="replace").rstrip("\r\n")[:MAX_LINE])
            code = await proc.wait()
    except TimeoutError:
        await _stop(proc)
        raise CommandFailed(
            f"{argv[0]} ran over its {timeout:g} s and was killed with its children"
        ) from None
    finally:
        if proc.returncode is None:  # cancelled: take the group down with us
            await asyncio.shield(_stop(proc))
    _kill_group(proc.pid, signal.SIGKILL)  # nothing it started outlives the step
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise CommandFailed(f"{argv[0]} {how}")

"""How the power-cut emulation itself behaves, without the agent or SQLite.

    python -m tests.support.shutdown_race [ROUNDS]      (root: it mounts)

Each round appends 4,120-byte records (a WAL frame) to a file on the
power-cut test's disk (``LoopExt4``), each followed by fdatasync, and notes
when each fdatasync returned; at a random moment the disk is cut, then
mounted again. A round *lost* data if the file is shorter than the last
fdatasync said. Printed: for each loss, when the lost record's fdatasync
returned relative to the start of the cut and how long the cut took; then
the same with the writer stopped 1 ms before the cut. On this machine
(2026-11-29) the losses were all of fdatasyncs that returned *during* the
cut, and none with the writer stopped first: what tests/support/history.py's
``doubt_from`` accounts for.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.support.disks import LoopExt4

RECORD = 4120


def one_round(disk: LoopExt4, quiesce: bool) -> str | None:
    """A round; a line describing the loss, or None."""
    fd = os.open(disk.mountpoint / "wal", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    synced: list[tuple[float, int]] = []  # (when fdatasync returned, the size it made durable)
    stop = threading.Event()

    def writer() -> None:
        offset = 0
        while not stop.is_set() and offset < 32 * 1024 * 1024:
            try:
                os.pwrite(fd, os.urandom(RECORD), offset)
                os.fdatasync(fd)
            except OSError:  # the cut
                return
            offset += RECORD
            synced.append((time.monotonic(), offset))

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(random.uniform(0.05, 0.3))
    if quiesce:
        stop.set()
        thread.join()
        time.sleep(0.001)
    began = time.monotonic()
    disk.cut()
    took = time.monotonic() - began
    stop.set()
    thread.join()
    os.close(fd)
    disk.remount()
    size = (disk.mountpoint / "wal").stat().st_size
    durable = [(when, at) for when, at in synced if at > size]
    if not durable:
        return None
    when, _ = durable[0]
    return (
        f"lost {len(durable)} record(s): the first one's fdatasync returned "
        f"{1000 * (when - began):+.2f} ms from the start of the cut, "
        f"which took {1000 * took:.2f} ms"
    )


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as tmp, LoopExt4(Path(tmp)) as disk:
        for quiesce in (False, True):
            losses = [line for line in (one_round(disk, quiesce) for _ in range(rounds)) if line]
            how = "writer stopped before the cut" if quiesce else "writer running"
            print(f"{how}: {len(losses)} of {rounds} rounds lost fsynced data")
            for line in losses:
                print(f"  {line}")


if __name__ == "__main__":
    main()

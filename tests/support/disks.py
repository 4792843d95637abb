"""Disks that misbehave for real: power cuts, full file systems, writes refused.

- ``LoopExt4``: an ext4 file system in a 64 MiB image, loop-mounted. ``cut``
  is a power cut: the EXT4_IOC_SHUTDOWN ioctl with EXT4_GOING_FLAGS_NOLOGFLUSH
  stops the file system at once without flushing its journal, so everything
  not yet fsynced is lost (what xfstests' ``godown`` does; checked on this
  machine: a fsynced write survives, an unsynced one is gone). ``remount``
  then mounts it again, replaying the journal as a boot would. The agent must
  be killed before: the kernel will not unmount a file system a process has
  files open on.
- ``SmallTmpfs``: a tmpfs of a few MiB; ``fill`` writes a ballast file until
  it is full (ENOSPC for every write after), ``drain`` removes it.
- ``refused_writes``: the kernel answers the agent's file writes and syncs
  with EROFS, as on a file system gone read-only, through strace's syscall
  fault injection attached to the running process; detaching ends it. (A real
  read-only remount cannot be had with the database open -- ``mount -o
  remount,ro`` and a read-only bind remount both fail with EBUSY while a file
  is open for writing -- and ext4's own emergency read-only, after an error,
  cannot be undone without unmounting.) With ``calls=SYNCS, error="EIO"`` only
  the syncs fail, as when a disk dies between a write and its sync.

All of it needs root (CI runs as root) and util-linux, e2fsprogs and strace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import store_writers

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2
# What the agent's SQLite writes and syncs with (and nothing else it does).
FILE_WRITES = "pwrite64,pwritev,pwritev2,fsync,fdatasync,ftruncate,fallocate"
SYNCS = "fsync,fdatasync"  # only the syncs: the writes reach the page cache, the syncs fail


def _run(*args: str) -> str:
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _unmount(mountpoint: Path) -> None:
    """Unmount, retrying briefly (a process that just died may still hold a file)."""
    for _ in range(50):
        done = subprocess.run(["umount", str(mountpoint)], check=False, capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    _run("umount", "--lazy", str(mountpoint))


class LoopExt4:
    """``with LoopExt4(workdir) as disk:`` -- an ext4 file system at ``disk.mountpoint``."""

    def __init__(self, workdir: Path, size: str = "64M") -> None:
        self.image = workdir / "disk.img"
        self.mountpoint = workdir / "mnt"
        self.size = size
        self.cuts = 0

    def __enter__(self) -> LoopExt4:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        _run("truncate", "-s", self.size, str(self.image))
        _run("mkfs.ext4", "-q", "-F", str(self.image))
        self._mount()
        return self

    def __exit__(self, *exc: object) -> None:
        if os.path.ismount(self.mountpoint):
            _unmount(self.mountpoint)
        self.image.unlink(missing_ok=True)

    def _mount(self) -> None:
        _run("mount", "-o", "loop", str(self.image), str(self.mountpoint))

    def cut(self) -> None:
        """The power goes: nothing that was not fsynced reaches the disk, nothing more at all."""
        fd = os.open(self.mountpoint, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)
        self.cuts += 1

    def remount(self) -> None:
        """The machine comes back: the file system is mounted again (its journal replayed)."""
        _unmount(self.mountpoint)
        self._mount()


class SmallTmpfs:
    """``with SmallTmpfs(path, "4m") as fs:`` -- a tmpfs of that size mounted at ``path``."""

    def __init__(self, mountpoint: Path, size: str) -> None:
        self.mountpoint = mountpoint
        self.size = size
        self.ballast = mountpoint / "ballast"

    def __enter__(self) -> SmallTmpfs:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.mountpoint))
        return self

    def __exit__(self, *exc: object) -> None:
        _unmount(self.mountpoint)

    def fill(self) -> int:
        """Write the ballast until the file system is full; answers the bytes it took."""
        written = 0
        with open(self.ballast, "ab", buffering=0) as f, contextlib.suppress(OSError):  # ENOSPC
            while True:
                written += f.write(b"\0" * 4096)
        return written

    def drain(self) -> None:
        """Remove the ballast: room again."""
        self.ballast.unlink()


@contextlib.contextmanager
def refused_writes(pid: int, calls: str = FILE_WRITES, error: str = "EROFS") -> Iterator[None]:
    """While inside, every file write and sync (``calls``) of agent ``pid`` and its store
    writer fails with ``error``; they may die inside. (Not its other children: a session's
    command, short-lived, and never the agent's disk.)"""
    family = [pid, *store_writers(pid)]
    tracer = subprocess.Popen(
        ["strace", "-qq", "-f", *(f"-p{p}" for p in family), "-o", "/dev/null",
         "-e", f"trace={calls}", "-e", f"inject={calls}:error={error}"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        for member in family:
            _wait_traced(member, tracer)
        yield
    finally:
        tracer.terminate()
        tracer.wait(10)
        for member in family:
            _wait_traced(member, None)


def _wait_traced(pid: int, tracer: subprocess.Popen[bytes] | None) -> None:
    """Wait until every thread of ``pid`` is traced (by ``tracer``), or none is (None)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tracers = set()
        if tracer is None and not Path(f"/proc/{pid}").exists():
            return  # it died: nothing traces it
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("TracerPid:"):
                        tracers.add(int(line.split()[1]))
        if tracers == ({tracer.pid} if tracer is not None else {0}):
            return
        if tracer is not None and tracer.poll() is not None:
            why = tracer.stderr.read().decode() if tracer.stderr else ""
            raise AssertionError(f"strace exited: {why}")
        time.sleep(0.02)
    raise AssertionError(f"the threads of {pid} are not traced as expected: {tracers}")

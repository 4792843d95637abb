"""This machine's own OS, booted under a real systemd in a container, for tests/system/.

The recipe of shared/testing.md with the fixes found on these machines:

- the host's root, read-only, is the lower layer of an overlay whose upper
  layer is a tmpfs: whatever the container writes stays in memory;
- a fresh machine id (nspawn refuses the host's);
- ``MASKED`` units are masked: some fail in a container, some only slow the
  boot down, none has anything to do with the agent;
- ``systemd-nspawn -b`` without registering at machined (no D-Bus on the
  host); the container's PID 1 is nspawn's child named ``systemd``; it can be
  talked to once ``/run/systemd/private`` exists, and is booted when
  ``systemctl is-system-running --wait`` returns.

Never boot systemd any other way: as PID 1 of a bare PID namespace on the
host's root, its tmpfiles service empties the host's /tmp.

``booted()`` undoes everything when it ends, failing or not: the container is
powered off (killed if it does not go), both mounts are unmounted and their
directories removed -- with rmdir only, never a recursive delete, since a
mount that did not go would expose the host's root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from tests.support.waiting import wait_for

BOX_PARENT = Path("/var/tmp")
BOX_PREFIX = "box."
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

MASKED = (
    # Fail in a container (machine.md): no NVMe fabrics, no IPMI device;
    # avahi would announce the container on the host's network.
    "nvmf-autoconnect.service",
    "openipmi.service",
    "avahi-daemon.service",
    "avahi-daemon.socket",
    # Measured on this machine: together they held the boot 2.4 s of its 2.7 s.
    "postgresql.service",
    "postgresql@.service",
    "prometheus-node-exporter-apt.service",
    "prometheus-node-exporter-apt.timer",
)


class Container:
    """A booted container: run commands in it as root would, as if logged in."""

    def __init__(self, leader: int, env: dict[str, str]) -> None:
        self.leader = leader  # its PID 1, as the host sees it
        self.boot_seconds = 0.0  # from starting nspawn to is-system-running
        self._env = env

    def run(
        self, *command: str, check: bool = True, timeout: float = 60.0, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside (all namespaces, a clean environment); output as text."""
        env = [f"{k}={v}" for k, v in self._env.items()]
        result = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "env", "-i", *env, *command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_plain_env(),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container, {' '.join(command)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def sh(self, script: str, timeout: float = 60.0) -> str:
        """Run a shell script inside; its stdout (fails the test if it fails)."""
        return self.run("sh", "-ec", script, timeout=timeout).stdout

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show -p ...`` of a unit, as a dict."""
        out = self.run("systemctl", "show", unit, *(f"-p{p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file inside, as root would."""
        self.run("install", "-D", "-m", f"{mode:o}", "/dev/stdin", path, stdin=text)


def _plain_env() -> dict[str, str]:
    """This process's environment without umockdev's preload (the suite runs under it)."""
    return {
        k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("UMOCKDEV")
    }


def _mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` in this mount namespace."""
    prefix = str(directory)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _leader(nspawn: subprocess.Popen[bytes]) -> int | None:
    """The container's PID 1: nspawn's child process named systemd."""
    found = subprocess.run(
        ["pgrep", "-P", str(nspawn.pid), "-x", "systemd"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if nspawn.poll() is not None:
        raise AssertionError(f"systemd-nspawn exited {nspawn.returncode} before booting")
    return int(found[0]) if found else None


@contextlib.contextmanager
def booted(
    log: Path, env: dict[str, str] | None = None, binds: Sequence[Path] = ()
) -> Iterator[Container]:
    """Boot the machine's OS in a container.

    ``env`` is added to every command run in it; ``binds`` are host directories
    shown read-only at the same place (see ``hidden_from_overlay``); nspawn
    writes to ``log``.
    """
    box = Path(tempfile.mkdtemp(prefix=BOX_PREFIX, dir=BOX_PARENT))
    layers, root = box / "t", box / "root"
    layers.mkdir()
    root.mkdir()
    nspawn: subprocess.Popen[bytes] | None = None
    leader: int | None = None
    # A cancelled run (SIGTERM) unwinds like a failed test, so the finally below runs.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6g", "tmpfs", str(layers)], check=True)
        (layers / "upper").mkdir()
        (layers / "work").mkdir()
        overlay = f"lowerdir=/,upperdir={layers}/upper,workdir={layers}/work"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", overlay, str(root)], check=True)
        machine_id = subprocess.run(
            ["systemd-id128", "new"], capture_output=True, text=True, check=True
        ).stdout
        (root / "etc/machine-id").write_text(machine_id)
        subprocess.run(
            ["systemctl", f"--root={root}", "mask", *MASKED], capture_output=True, check=True
        )
        started = time.monotonic()
        with log.open("ab") as out:
            nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--register=no",
                    "--keep-unit",
                    "--link-journal=no",
                    "--quiet",
                    f"--directory={root}",
                    "--boot",
                    "--console=passive",
                    *(f"--bind-ro={path}" for path in binds),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_plain_env(),
            )
        running = nspawn
        leader = wait_for(lambda: _leader(running), BOOT_TIMEOUT, what="the container's PID 1")
        assert leader is not None
        box_env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        container = Container(leader, box_env)
        wait_for(
            lambda: (
                container.run("test", "-S", "/run/systemd/private", check=False).returncode == 0
            ),
            BOOT_TIMEOUT,
            what="the container's systemd to listen",
        )
        state = container.run(
            "systemctl", "is-system-running", "--wait", check=False, timeout=BOOT_TIMEOUT
        ).stdout.strip()
        container.boot_seconds = time.monotonic() - started
        if state != "running":
            # Not the agent's business, but worth a MASKED entry: said, not failed.
            failed = container.run("systemctl", "--failed", "--no-legend", check=False).stdout
            print(f"the container booted {state!r}; failed units:\n{failed}")
        yield container
    finally:
        try:
            _tear_down(box, nspawn, leader)
        finally:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def _tear_down(box: Path, nspawn: subprocess.Popen[bytes] | None, leader: int | None) -> None:
    problems: list[str] = []
    if nspawn is not None:
        nspawn.send_signal(signal.SIGTERM)  # nspawn powers the container off
        try:
            nspawn.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("the container did not power off: killed")
            nspawn.kill()
            nspawn.wait()
    if leader is not None and Path(f"/proc/{leader}").exists():
        # A killed nspawn leaves its PID 1 behind; killing that ends the whole namespace.
        with contextlib.suppress(ProcessLookupError):
            os.kill(leader, signal.SIGKILL)
        if not _wait_gone(leader, STOP_TIMEOUT):
            problems.append(f"the container's PID 1 ({leader}) would not die")
    for point in (box / "root", box / "t"):
        if str(point) not in _mounts_under(box):
            continue
        for _ in range(50):
            unmounted = subprocess.run(["umount", str(point)], check=False, capture_output=True)
            if unmounted.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "--lazy", str(point)], check=False)
            problems.append(f"{point} was busy: unmounted lazily")
    left = _mounts_under(box)
    if left:
        raise AssertionError(f"still mounted after the test: {left}")
    # rmdir only: nothing recursive anywhere near a mount point of the host's root.
    with contextlib.suppress(FileNotFoundError):
        (box / ".#root.lck").unlink()  # nspawn's lock beside the directory
    for directory in (box / "root", box / "t", box):
        with contextlib.suppress(FileNotFoundError):
            directory.rmdir()
    if problems:
        raise AssertionError("; ".join(problems))


def hidden_from_overlay(paths: Sequence[Path]) -> list[Path]:
    """Those of ``paths`` the container does not see without a bind.

    Those on another file system than / (the overlay shows only the root's),
    and those under /tmp, where the container's systemd mounts a tmpfs of its own
    (a checkout cloned into /tmp).
    """
    root_dev = os.stat("/").st_dev
    return [p for p in paths if os.stat(p).st_dev != root_dev or p.resolve().is_relative_to("/tmp")]

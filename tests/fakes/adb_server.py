"""A private, real adb server for tests: the adb the agent's adb unit runs.

That is the adb in adbutils' wheel (``resource-agent adb-server`` executes
it), not Debian's older one that may also be on the PATH.

Each ``AdbServer`` runs on its own free port with its own ``HOME`` and
``TMPDIR`` (keys, state and adb's log stay in the test's temp dir) and is
only ever addressed by that port: the machine's default server on 5037 is
never touched. ``kill()`` stops it with ``adb -P PORT kill-server``.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from agent.cli.adb_server import adb_binary
from tests.support.net import free_port
from tests.support.waiting import wait_for

ADB = str(adb_binary())
DEFAULT_PORT = 5037


class AdbServer:
    """One adb server process on ``127.0.0.1:port``."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port if port is not None else free_port()
        assert self.port != DEFAULT_PORT, "tests must never use the default adb server"
        home.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``[adb] server`` takes it."""
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment every adb command of this server runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDROID_", "ADB_"))}
        # ADB_LIBUSB=0: no USB bus here, and adb's libusb backend, failing to start,
        # holds the server's first command 3 s; its own Linux backend does not.
        env.update(HOME=str(self.home), TMPDIR=str(self.home), ADB_LIBUSB="0")
        return env

    def adb(self, *args: str, check: bool = True, timeout: float = 20.0) -> str:
        """Run ``adb -P PORT ARGS``; its stdout (stderr too when it fails)."""
        # Output goes to a file: the server that start-server forks keeps
        # inherited pipes open, so reading a pipe to EOF would hang.
        out_path = self.home / "adb-command.out"
        with out_path.open("w+b") as out:
            proc = subprocess.run(
                [ADB, "-P", str(self.port), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                timeout=timeout,
                check=False,
            )
            out.seek(0)
            text = out.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"adb {' '.join(args)} exited {proc.returncode}: {text}")
        return text

    def start(self) -> AdbServer:
        """Start the server; return once it answers."""
        self.adb("start-server")
        wait_for(self.answers, timeout=10, what=f"adb server on {self.address}")
        return self

    def kill(self) -> None:
        """Stop the server (by its port) and wait until the port is closed."""
        if self.answers():
            self.adb("kill-server", check=False)
        wait_for(lambda: not self.answers(), timeout=10, what="adb server to exit")

    def answers(self) -> bool:
        """Whether something accepts connections on the port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def devices(self) -> dict[str, str]:
        """``adb devices``: serial -> state."""
        listed: dict[str, str] = {}
        for line in self.adb("devices").splitlines()[1:]:
            serial, tab, state = line.partition("\t")
            if tab:
                listed[serial] = state
        return listed

    def connect(self, serial: str, state: str | None = "device") -> None:
        """``adb connect`` and wait until the server lists the serial (in ``state``)."""
        self.adb("connect", serial, check=False)  # exits 1 for an unauthorized phone
        wait_for(
            lambda: self.devices().get(serial) == state if state else serial in self.devices(),
            timeout=10,
            what=f"{serial} listed as {state or 'anything'}",
        )

    def disconnect(self, serial: str) -> None:
        """``adb disconnect`` (quietly: the phone may be listed or not)."""
        self.adb("disconnect", serial, check=False)

    def __enter__(self) -> AdbServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

"""A fake Android phone: the device side of the adb transport protocol over TCP.

The real adb server talks to it after ``adb connect 127.0.0.1:PORT`` exactly as
to a phone on Wi-Fi debugging: 24-byte message headers (command, arg0, arg1,
length, checksum, magic), CNXN to connect, OPEN/OKAY/WRTE/CLSE for streams.

It answers ``shell:`` services (v1 raw and shell protocol v2) for ``getprop``,
``getprop NAME``, ``dumpsys battery``, ``dumpsys window``, ``pm list packages``, ``pm uninstall``,
``input keyevent``, ``wm dismiss-keyguard``, ``logcat -c``, ``reboot`` and ``echo``; everything
else exits 127.
``shell_mode`` makes it misbehave: ``"garbage"`` answers junk to every command,
``"hang"`` never answers a shell at all. ``mode`` is what the phone says it
is running (``device``, ``recovery``, ``sideload``, ``bootloader``...), and
the host lists it in that state.

USB debugging authorization: with ``auth="refuse"`` it answers the host's CNXN
with an AUTH token request (as adbd does when ``ro.adb.secure=1``), rejects
every signature and never accepts the host's public key, so the host lists it
``unauthorized`` -- the prompt on the phone was never accepted. ``authorize()``
is the person tapping "Allow": waiting connections get their CNXN and go online.

Use it in-process (``with FakeAdbd(props=...) as phone:`` runs it on a thread
with its own event loop) or as a process:
``python -m tests.fakes.adbd --port 6101 --prop ro.product.model=X --auth refuse``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import struct
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Literal

from tests.support.net import free_port

A_CNXN, A_OPEN, A_OKAY, A_WRTE, A_CLSE, A_AUTH = (
    struct.unpack("<I", c)[0] for c in (b"CNXN", b"OPEN", b"OKAY", b"WRTE", b"CLSE", b"AUTH")
)
A_VERSION = 0x01000001  # the "skip checksum" protocol version
MAX_PAYLOAD = 256 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
NAMES = {A_CNXN: "CNXN", A_OPEN: "OPEN", A_OKAY: "OKAY", A_WRTE: "WRTE", A_CLSE: "CLSE"}
NAMES[A_AUTH] = "AUTH"

DEFAULT_PROPS: dict[str, str] = {
    "ro.product.model": "Pixel 7",
    "ro.product.name": "panther",
    "ro.product.device": "panther",
    "ro.product.manufacturer": "Google",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.serialno": "ABC123",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.fingerprint": "google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys",
    "sys.boot_completed": "1",
}

AuthMode = Literal["none", "refuse"]
# What the CNXN banner announces; the host lists the phone in this state.
Mode = Literal["device", "recovery", "sideload", "bootloader", "rescue"]
ShellMode = Literal["normal", "garbage", "hang"]


def pack(cmd: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    """One adb transport message: header then payload."""
    header = struct.pack(
        "<6I", cmd, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, cmd ^ 0xFFFFFFFF
    )
    return header + data


def dumpsys_battery(level: int) -> str:
    """What ``dumpsys battery`` prints on a phone at ``level`` percent."""
    return (
        "Current Battery Service state:\n"
        "  AC powered: false\n  USB powered: true\n  Wireless powered: false\n"
        "  Max charging current: 500000\n  Charge counter: 2931000\n"
        "  status: 2\n  health: 2\n  present: true\n"
        f"  level: {level}\n  scale: 100\n  voltage: 4178\n  temperature: 250\n"
        "  technology: Li-ion\n"
    )


def v2_packet(kind: int, payload: bytes) -> bytes:
    """A shell protocol v2 packet: 1 byte id, 4 byte LE length, data."""
    return struct.pack("<BI", kind, len(payload)) + payload


class FakeAdbd:
    """One fake phone listening on ``host:port`` (port 0: the kernel picks)."""

    def __init__(
        self,
        port: int = 0,
        *,
        props: Mapping[str, str] | None = None,
        battery: int = 85,
        auth: AuthMode = "none",
        shell_mode: ShellMode = "normal",
        mode: Mode = "device",
        host: str = "127.0.0.1",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.props = dict(DEFAULT_PROPS if props is None else props)
        self.battery = battery
        self.auth: AuthMode = auth
        self.shell_mode: ShellMode = shell_mode
        self.mode: Mode = mode
        self.shell_count = 0  # shell commands received, for tests that wait on a poll
        self.connects = 0  # CNXNs from the host: more than one means adb reconnected
        self.heal_on_reconnect = False  # a hung shell answers again once adb reconnects
        self.packages: set[str] = {"com.example.app"}  # third-party packages (pm list -3)
        self.keyevents: list[str] = []  # `input keyevent N` received
        self.keyguard = False  # a keyguard is showing
        self.secure = False  # ... and it needs a credential (wm dismiss-keyguard cannot)
        self.services: list[str] = []  # every OPEN service, in order
        self.reboots: list[str] = []  # reboot: targets ("" = normal)
        self.boot_seconds = 1.0  # how long a rebooting phone is gone
        self.booting = False
        self._log = log or (lambda _m: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()

    @property
    def serial(self) -> str:
        """The adb serial the host gives this phone."""
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeAdbd:
        """Listen, on a thread of its own; return once the port is open."""
        assert self._thread is None, "already running"
        if self.port == 0:
            self.port = free_port(self.host)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to start()'s caller
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fake-adbd-{self.port}", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:
            self._thread.join()
            self._thread = self._loop = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close the port and every connection, as if the phone died."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = self._loop = None

    def authorize(self) -> None:
        """Accept the host's key, like tapping "Allow" on the USB debugging prompt."""
        self.auth = "none"
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._accept_waiting)

    def __enter__(self) -> FakeAdbd:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------- internal

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, reuse_address=True
        )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def reboot(self, target: str = "") -> None:
        """Go away (drop every connection, close the port) and come back after boot_seconds."""
        self.reboots.append(target)
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(lambda: loop.create_task(self._reboot()))

    async def _reboot(self) -> None:
        if self.booting:
            return
        self.booting = True
        await asyncio.sleep(0.05)  # let the CLSE reach the host first
        await self._close()
        await asyncio.sleep(self.boot_seconds)
        await self._listen()
        self.booting = False

    def _accept_waiting(self) -> None:
        for session in self._sessions:
            if session.waiting_for_key:
                session.accept()

    async def _on_connection(self, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, w)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    def banner(self) -> bytes:
        """The CNXN payload: the device's identity and features."""
        ids = "".join(
            f"{k}={self.props.get(k, '')};"
            for k in ("ro.product.name", "ro.product.model", "ro.product.device")
        )
        return f"{self.mode}::{ids}features=shell_v2,cmd".encode()

    def run_command(self, cmdline: str) -> tuple[bytes, int]:
        """Run ';'-separated fake commands; answer (stdout, exit code)."""
        self.shell_count += 1
        if self.shell_mode == "garbage":
            return b"\x00\xff]]: [[not a prop\nlevel: many\n\x1b[0m", 0
        out, rc = b"", 0
        for part in cmdline.split(";"):
            chunk, rc = self._run_one(part.replace("$?", str(rc)))
            out += chunk
        return out, rc

    def _run_one(self, cmdline: str) -> tuple[bytes, int]:
        try:
            argv = shlex.split(cmdline)
        except ValueError:
            argv = cmdline.split()
        if not argv:
            return b"", 0
        if argv[0] == "getprop":
            if len(argv) == 1:
                return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())).encode(), 0
            return (self.props.get(argv[1], "") + "\n").encode(), 0
        if argv[:2] == ["dumpsys", "battery"]:
            return dumpsys_battery(self.battery).encode(), 0
        if argv[:3] == ["pm", "list", "packages"]:
            return "".join(f"package:{p}\n" for p in sorted(self.packages)).encode(), 0
        if argv[:2] == ["pm", "uninstall"] and len(argv) == 3:
            if argv[2] in self.packages:
                self.packages.discard(argv[2])
                return b"Success\n", 0
            return b"Failure [DELETE_FAILED_INTERNAL_ERROR]\n", 1
        if argv[:2] == ["input", "keyevent"] and len(argv) == 3:
            self.keyevents.append(argv[2])
            return b"", 0
        if argv[:2] == ["wm", "dismiss-keyguard"]:
            self.keyguard = self.keyguard and self.secure
            return b"", 0
        if argv[:2] == ["dumpsys", "window"]:
            return f"  mDreamingLockscreen={str(self.keyguard).lower()}\n".encode(), 0
        if argv[0] == "logcat" and argv[1:] in (["-c"], ["--clear"]):
            return b"", 0
        if argv[0] == "reboot" and len(argv) <= 2:
            self.reboot(argv[1] if len(argv) == 2 else "")
            return b"", 0
        if argv[0] == "echo":
            return (" ".join(argv[1:]) + "\n").encode(), 0
        return f"/system/bin/sh: {argv[0]}: inaccessible or not found\n".encode(), 127


class _Session:
    """One host connection to the fake phone."""

    def __init__(self, phone: FakeAdbd, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.phone = phone
        self.r, self.w = r, w
        self.next_id = 1
        self.online = False
        self.waiting_for_key = False

    def send(self, cmd: int, a0: int, a1: int, data: bytes = b"") -> None:
        self.phone._log(f"  -> {NAMES.get(cmd, hex(cmd))} {a0} {a1} {data[:60]!r}")
        if not self.w.is_closing():
            self.w.write(pack(cmd, a0, a1, data))

    def accept(self) -> None:
        self.waiting_for_key = False
        self.online = True
        self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self.phone.banner())

    def abort(self) -> None:
        self.w.transport.abort()

    async def run(self) -> None:
        try:
            while True:
                header = await self.r.readexactly(24)
                cmd, a0, a1, n, _crc, magic = struct.unpack("<6I", header)
                if magic != cmd ^ 0xFFFFFFFF:
                    self.phone._log("bad magic, dropping the connection")
                    break
                data = await self.r.readexactly(n) if n else b""
                self.phone._log(f"<-  {NAMES.get(cmd, hex(cmd))} {a0:#x} {a1} {data[:60]!r}")
                self.handle(cmd, a0, a1, data)
                await self.w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.w.close()

    def handle(self, cmd: int, a0: int, a1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.phone.connects += 1
            if self.phone.heal_on_reconnect and self.phone.connects > 1:
                self.phone.shell_mode = "normal"
            if self.phone.auth == "refuse":
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            else:
                self.accept()
        elif cmd == A_AUTH:
            if a0 == AUTH_SIGNATURE:  # no key of the host's is known: ask again
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            elif a0 == AUTH_RSAPUBLICKEY:  # the prompt is on screen now
                self.waiting_for_key = True
                if self.phone.auth == "none":
                    self.accept()
        elif cmd == A_OPEN and self.online:
            self.open(a0, data.rstrip(b"\0").decode(errors="replace"))
        elif cmd == A_WRTE and self.online:  # data from the host (stdin): ack it
            self.send(A_OKAY, a1, a0)
        # OKAY and CLSE from the host need no answer in this simple model.

    def open(self, remote_id: int, service: str) -> None:
        local_id = self.next_id
        self.next_id += 1
        self.phone.services.append(service)
        if service.startswith("reboot:"):
            self.send(A_OKAY, local_id, remote_id)
            self.send(A_CLSE, local_id, remote_id)
            self.phone.reboot(service.partition(":")[2])
            return
        if not service.startswith("shell"):
            self.send(A_CLSE, 0, remote_id)  # unsupported service: refuse the stream
            return
        head, _, cmdline = service.partition(":")
        if self.phone.shell_mode == "hang":
            self.phone.shell_count += 1
            self.send(A_OKAY, local_id, remote_id)  # opened, but no output ever comes
            return
        out, rc = self.phone.run_command(cmdline)
        self.send(A_OKAY, local_id, remote_id)
        if ",v2" in head:
            payload = (v2_packet(1, out) if out else b"") + v2_packet(3, bytes([rc & 0xFF]))
        else:
            payload = out
        if payload:
            self.send(A_WRTE, local_id, remote_id, payload)
        self.send(A_CLSE, local_id, remote_id)


def main() -> None:
    """Run one fake phone in the foreground until interrupted."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6101, help="avoid 5555-5585 (emulator ports)")
    ap.add_argument("--prop", action="append", default=[], metavar="K=V", help="override a prop")
    ap.add_argument("--battery", type=int, default=85, help="dumpsys battery level")
    ap.add_argument("--auth", choices=["none", "refuse"], default="none")
    ap.add_argument("--shell", choices=["normal", "garbage", "hang"], default="normal")
    ap.add_argument("--mode", choices=["device", "recovery", "sideload", "bootloader", "rescue"])
    ap.add_argument("-v", action="store_true", help="log every message")
    args = ap.parse_args()
    props = dict(DEFAULT_PROPS)
    props.update(kv.split("=", 1) for kv in args.prop)
    phone = FakeAdbd(
        args.port,
        props=props,
        battery=args.battery,
        auth=args.auth,
        shell_mode=args.shell,
        mode=args.mode or "device",
        host=args.host,
        log=(lambda m: print(m, flush=True)) if args.v else None,
    )
    with phone:
        print(f"fake adbd listening on {phone.serial}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

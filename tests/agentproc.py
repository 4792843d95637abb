"""The real ``resource-agent serve`` process, for end-to-end tests.

``AgentProcess`` writes a config into its own directory, starts the agent on a
free port, waits until ``GET /api/health`` answers, and can stop it politely
(SIGTERM), kill it (SIGKILL) and start it again on the same state directory.
Everything the agent writes to stdout and stderr lands in ``log_path``, and
the tail of it is quoted whenever the process misbehaves.

Sources are off unless asked for (``udev=True``, ``adb=True``), so a test
sees only its ``resources``. It listens on 127.0.0.1 unless ``listen_host``
says otherwise (``0.0.0.0`` for callers from another address). Anything else
goes in ``config`` (merged over the generated settings, e.g.
``{"adb": {"server": "127.0.0.1:5137"}}`` or ``{"coordinator": [{"url": ...}]}``;
``configure`` merges more in later) and
``env`` (e.g. ``{"UMOCKDEV_DIR": testbed_root}``; None removes a variable).
The config file is written by tomli-w.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.net import free_port
from tests.support.tomlfile import merged, to_toml
from tests.support.waiting import wait_for

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


class AgentError(AssertionError):
    """The agent process did not behave (would not start, stop, or answer)."""


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a TCP socket listening on ``port`` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    if not inodes:
        return False
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}").removeprefix("socket:[").rstrip("]") in inodes:
                return True
    return False


# --------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    """One HTTP answer, body unparsed."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (fails the test if it is not)."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(
                f"HTTP {self.status}: body is not JSON: {self.body[:300]!r}"
            ) from exc


def http_request(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request on a fresh connection. ``body``: bytes as is, str UTF-8, else JSON."""
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    all_headers = dict(headers or {})
    data: bytes | None
    if body is None:
        data = None
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=all_headers)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# ------------------------------------------------------------------- process


class AgentProcess:
    """One agent process with its own config, state directory and log."""

    def __init__(
        self,
        directory: Path,
        *,
        resources: Sequence[str | Mapping[str, Any]] = (),
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str | None] | None = None,
        args: Sequence[str] = (),
        udev: bool = False,
        adb: bool = False,
        log_level: str = "info",
        port: int | None = None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.directory = directory
        self.listen_host = listen_host  # 0.0.0.0: callers from another address too
        self.state_dir = directory / "state"
        self.config_path = directory / "agent.toml"
        self.log_path = directory / "agent.log"
        self.host = "127.0.0.1"
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.args = list(args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        settings: dict[str, Any] = {
            "agent": {
                "state_dir": str(self.state_dir),
                "log_level": log_level,
                "identity": "resource-agent://test-node",
            },
            "udev": {"enabled": udev},
            "adb": {"enabled": adb},
            "resource": [r if isinstance(r, Mapping) else {"id": r} for r in resources],
        }
        self.settings = merged(settings, config or {})
        self.config_text = ""
        directory.mkdir(parents=True, exist_ok=True)
        self._write_config()

    def configure(self, config: Mapping[str, Any]) -> None:
        """Merge ``config`` over the settings and write the file again (read at the next start)."""
        self.settings = merged(self.settings, config)
        self._write_config()

    def _write_config(self) -> None:
        self.config_text = to_toml(self.settings)
        self.config_path.write_text(self.config_text)

    # ---------------------------------------------------------------- facts

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.proc is not None, "the agent is not running"
        return self.proc.pid

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything the agent printed so far (all runs)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def run_log(self) -> str:
        """What the current (or last) run printed: the log since its start line."""
        text = self.log()
        return text[text.rfind("--- start: ") :] if "--- start: " in text else text

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """Wait until the current run has printed a line containing ``text``; answer it."""

        def line() -> str | None:
            return next((ln for ln in self.run_log().splitlines() if text in ln), None)

        try:
            return str(wait_for(line, timeout=timeout, what=f"log line with {text!r}"))
        except AssertionError as exc:
            raise AgentError(f"{exc}:\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log, for failure messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def command(self) -> list[str]:
        """The command line the agent runs with."""
        return [
            sys.executable,
            "-m",
            "agent.cli",
            "serve",
            "--config",
            str(self.config_path),
            "--listen",
            f"{self.listen_host}:{self.port}",
            *self.args,
        ]

    # ------------------------------------------------------------- lifecycle

    def start(self, wait: bool = True, timeout: float = START_TIMEOUT) -> AgentProcess:
        """Start the agent; by default return once it answers /api/health."""
        assert not self.running(), "the agent is already running"
        for attempt in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except AgentError:
                # Another process may have taken the port between our probe and the bind.
                if self._fixed_port or self.running() or "cannot listen" not in self.log():
                    raise
                if attempt == 2:
                    raise
                self.port = free_port()
        return self

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
            )
        self.returncode = None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``GET /api/health`` answers 200; fail if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                self.returncode = self.proc.returncode if self.proc else None
                raise AgentError(
                    f"agent exited with {self.returncode} before it answered:\n{self.log_tail()}"
                )
            try:
                # Our process must own the listener: another agent on the port would answer too.
                if (
                    listens(self.pid, self.port)
                    and http_request(self.url, "GET", "/api/health", timeout=2).status == 200
                ):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AgentError(f"agent did not answer within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.02)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to exit by itself; answer its exit code."""
        assert self.proc is not None, "the agent was never started"
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AgentError(f"agent still running after {timeout} s:\n{self.log_tail()}") from exc
        return self.returncode

    def signal(self, sig: int) -> None:
        """Send a signal to the running process."""
        assert self.proc is not None and self.proc.poll() is None, "the agent is not running"
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; answer the exit code (0 is an orderly stop)."""
        if self.running():
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        """SIGKILL (no chance to clean up) and reap; a process that died meanwhile is reaped."""
        assert self.proc is not None, "the agent was never started"
        self.proc.kill()  # Popen sends nothing to a process it has seen exit
        return self.wait()

    def restart(self, kill: bool = False) -> AgentProcess:
        """Stop (SIGTERM, or SIGKILL with ``kill``) and start again on the same state."""
        if kill:
            self.kill()
        else:
            code = self.terminate()
            if code != 0:
                raise AgentError(f"agent exited with {code} on SIGTERM:\n{self.log_tail()}")
        return self.start()

    def stop(self) -> None:
        """Make sure the process is gone (SIGTERM, then SIGKILL); for teardown."""
        if not self.running():
            return
        try:
            self.terminate(timeout=5)
        except AgentError:
            self.kill()

    def __enter__(self) -> AgentProcess:
        if self.running():
            return self
        try:
            return self.start()
        except BaseException:
            self.stop()  # __exit__ is not called when __enter__ fails: leave no orphan
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """One HTTP request to the agent (see ``http_request``)."""
        return http_request(self.url, method, path, body, headers=headers, timeout=timeout)

    def get(self, path: str) -> Any:
        """GET a path that must answer 200; the parsed JSON."""
        resp = self.request("GET", path)
        if resp.status != 200:
            raise AssertionError(f"GET {path}: HTTP {resp.status}: {resp.body[:300]!r}")
        return resp.json()

    def post(self, path: str, body: Any = None) -> Response:
        """POST JSON (``{}`` when None) to a path."""
        return self.request("POST", path, {} if body is None else body)


@contextlib.contextmanager
def running_agent(directory: Path, **kwargs: Any) -> Any:
    """``with running_agent(tmp_path, resources=["r1"]) as agent:`` -- started and cleaned up."""
    agent = AgentProcess(directory, **kwargs)
    try:
        yield agent.start()
    finally:
        agent.stop()

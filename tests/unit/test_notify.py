"""agent.systemd.notify: the sd_notify client, against a real datagram socket."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

import pytest

from agent.systemd.notify import Notifier


def test_silent_without_notify_socket() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "200000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("x")  # nothing to send to, and no error
    notifier.close()


def test_path_socket_and_watchdog_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        notifier = Notifier(
            {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
        )
        assert notifier.watchdog_interval == 1.5
        notifier.ready("2 resources")
        notifier.status("a\nb")
        assert sock.recv(100) == b"READY=1\nSTATUS=2 resources"
        assert sock.recv(100) == b"STATUS=a b"
        notifier.close()


@pytest.mark.parametrize(
    "env",
    [
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"},
    ],
)
def test_watchdog_off(env: dict[str, str]) -> None:
    assert Notifier({"NOTIFY_SOCKET": "@x", **env}).watchdog_interval is None


def test_unreachable_manager_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    with caplog.at_level(logging.WARNING, logger="agent.systemd.notify"):
        notifier.watchdog()
        notifier.watchdog()
    assert [r.getMessage() for r in caplog.records] == [
        "cannot notify the service manager: [Errno 2] No such file or directory"
    ]
    notifier.close()


def test_status_and_watchdog_never_wait_for_a_manager_that_is_behind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A manager that does not read (its queue full) must not stall the event loop."""
    path = str(tmp_path / "n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        finished = threading.Event()

        def flood() -> None:
            # Far more than a datagram queue holds (net.unix.max_dgram_qlen).
            for n in range(5000):
                notifier.status(f"{n} resources")
                notifier.watchdog()
            finished.set()

        with caplog.at_level(logging.WARNING, logger="agent.systemd.notify"):
            thread = threading.Thread(target=flood, daemon=True)
            thread.start()
            finished.wait(30)
            assert finished.is_set(), "a status update waited for the manager"
        assert "cannot notify the service manager" in caplog.text
        assert sock.recv(100) == b"STATUS=0 resources"
        notifier.close()

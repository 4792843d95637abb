"""Ports and sockets for tests."""

from __future__ import annotations

import ipaddress
import random
import socket
from pathlib import Path

LOWEST = 10000  # below: ports services may own


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range.

    Not the kernel's own pick (bind to port 0), which comes from that range: a
    client that connects to such a port while its server is still starting can
    be given the very same port as its own and connect to itself (TCP's
    simultaneous open; here about once in a thousand tries), then read back
    its own request -- "protocol fault (status 30 30 30 63)" from ``adb
    start-server``, which sent "000chost:version".
    """
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    below = int(ephemeral[0])
    for _ in range(1000):
        port = random.randrange(LOWEST, below)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port between {LOWEST} and {below} on {host}")


def other_address() -> str:
    """An address of this machine that is not loopback: calls from it come from elsewhere.

    The one the route out uses (nothing is sent: a UDP socket's connect only routes).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1
        except OSError as exc:
            raise AssertionError(
                f"this machine has no route out, so no address but loopback: {exc}"
            ) from exc
        address = str(sock.getsockname()[0])
    assert not ipaddress.ip_address(address).is_loopback, address
    return address

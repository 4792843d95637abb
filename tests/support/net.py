"""Ports and sockets for tests."""

from __future__ import annotations

import ipaddress
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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

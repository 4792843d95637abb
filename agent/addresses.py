"""Who calls the agent, by address: the entries of ``[server] jsonrpc_allow``, and peers.

An allow entry is an address or network (``10.1.0.0/16``, ``::1``), a host
name (resolved by the API, again and again), or the word ``coordinators``:
the host of every configured ``[[coordinator]]`` url.
"""

from __future__ import annotations

import ipaddress
import re

COORDINATORS = "coordinators"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")


def parse_allow(entry: str) -> Network | str:
    """An allow entry as a network, or a host name (or ``coordinators``) as it is.

    ValueError, naming the entry, when it is neither.
    """
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    if _HOST.match(entry) and not entry.replace(".", "").isdigit():
        return entry
    raise ValueError(
        f"{entry!r} is not an address, a network (10.0.0.0/8), a host name or {COORDINATORS!r}"
    )


def ip_of(address: str | None) -> Address | None:
    """A peer's address as an IP (an IPv4-mapped IPv6 one as IPv4), or None."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str | None) -> bool:
    """Whether the peer is this machine's loopback (127.0.0.0/8, ::1)."""
    ip = ip_of(address)
    return ip is not None and ip.is_loopback

"""The client address that per-IP limits count against.

Why not simply trust ``X-Forwarded-For``: anyone can send the header, so a client could pick a
fresh address for every request and never hit a limit. The header is believed only as far as a
chain of proxies we were told to trust (``IMGPRO_TRUSTED_PROXIES``) vouches for it: starting
from the socket peer, each trusted hop may name the one before it, reading the header from the
right (the entry appended by the proxy nearest to us). The first untrusted address is the client.
Garbage in the header stops the walk at the last address we could verify; it never raises.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.types import Scope

__all__ = ["client_ip", "parse_trusted_proxies"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"
"""What :func:`client_ip` answers when the server has no peer address (e.g. a Unix socket)."""

_MAX_HOPS = 32
"""Bound on header entries inspected, so a huge header costs nothing."""


@lru_cache(maxsize=16)
def parse_trusted_proxies(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated IPs and CIDRs -> networks. Raises ``ValueError`` naming a bad entry.

    An operator's typo must fail loudly at start-up (Settings validates with this), not
    silently trust nothing or everything.
    """
    networks = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR in trusted proxies: {entry!r}") from exc
        networks.append(_unmap_network(network))
    return tuple(networks)


def client_ip(scope: Scope, trusted_proxies: str) -> str:
    """The client's address for an ASGI HTTP/WebSocket ``scope`` (see the module doc)."""
    peer = _parse_address(_peer_host(scope))
    if peer is None:
        return UNKNOWN_CLIENT
    trusted = parse_trusted_proxies(trusted_proxies)
    current = peer
    if trusted and _is_trusted(current, trusted):
        for entry in reversed(_forwarded_for_entries(scope)):
            hop = _parse_address(entry)
            if hop is None:
                break
            current = hop
            if not _is_trusted(current, trusted):
                break
    return str(current)


def _peer_host(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    return str(client[0])


def _forwarded_for_entries(scope: Scope) -> list[str]:
    values = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or ()
        if name.lower() == b"x-forwarded-for"
    ]
    entries = ",".join(values).split(",")
    return entries[-_MAX_HOPS:]


def _parse_address(text: str) -> IPAddress | None:
    """An address from a peer or header entry; accepts ``[v6]:port`` and ``v4:port``; else None."""
    text = text.strip().strip('"')
    if not text or len(text) > 100:
        return None
    if text.startswith("["):
        text, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has at least two colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _unmap(address)


def _unmap(address: IPAddress) -> IPAddress:
    """``::ffff:1.2.3.4`` (a dual-stack socket's view of an IPv4 peer) is ``1.2.3.4``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmap_network(network: IPNetwork) -> IPNetwork:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)

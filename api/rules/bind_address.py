"""``host:port`` as an operator writes it (``IMGPRO_METRICS_ADDRESS``), checked at start-up."""

from __future__ import annotations

import ipaddress


def parse_bind_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9090"``, ``"[::1]:9090"``, ``"0.0.0.0:0"`` -> (host, port); ValueError else.

    The host must be an IP address (a name would be resolved to who knows which interface).
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:9090)")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: the host must be an IP address, e.g. 127.0.0.1") from None
    return host, int(port_text)

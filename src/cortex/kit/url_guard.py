"""Refusing outbound URLs that resolve to private, loopback or link-local addresses (SSRF guard).

Used for webhooks (tool calls) and URL ingestion alike. The addresses are resolved here, and the
caller should connect to one of the returned addresses' host only through this check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class BlockedUrl(ValueError):
    """The URL is malformed, not http(s), or points at an address Cortex must not reach."""


def _is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified)


async def check_url(url: str, *, allow_private: bool) -> list[str]:
    """Return the resolved addresses of `url`'s host, or raise BlockedUrl."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedUrl("only http and https URLs with a host are allowed")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BlockedUrl("invalid port") from exc
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedUrl(f"cannot resolve host {host!r}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for raw in addresses:
            if _is_private(ipaddress.ip_address(raw.split("%")[0])):
                raise BlockedUrl(f"{host} resolves to a private or local address; refused")
    return addresses

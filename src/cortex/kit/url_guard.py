"""Refusing outbound URLs that resolve to anything but a globally reachable address (SSRF guard).

Only `is_global` unicast addresses pass, and an IPv6 address that carries an IPv4 one (IPv4-mapped,
6to4, NAT64, Teredo) passes only when the carried address does too: `2002:7f00:1::` is 127.0.0.1.
Used for webhooks (tool calls), action definitions and URL ingestion alike, twice: `check_url` before a request, for a
clear error, and `GuardedTransport` at connect time, which connects only to an address it has just
resolved and vetted. The second closes DNS rebinding: a name that resolves to a public address for the
check and to 127.0.0.1 a moment later for the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx


class BlockedUrl(ValueError):
    """The URL is malformed, not http(s), or points at an address Cortex must not reach."""


class UnresolvableHost(BlockedUrl):
    """The URL's host name does not resolve (now)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address
# Not globally reachable though `is_global` says so in the Python we run (3.11): IETF protocol
# assignments, 192.0.0.8 and the rest (the anycast 192.0.0.9 and .10 are no webhook's address either).
_NOT_GLOBAL_V4 = (ipaddress.IPv4Network("192.0.0.0/24"),)


def _is_public_v4(address: ipaddress.IPv4Address) -> bool:
    return (address.is_global and not address.is_multicast
            and not any(address in network for network in _NOT_GLOBAL_V4))


def _carried_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    carried: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        carried.append(address.sixtofour)
    if address.teredo is not None:
        carried.extend(address.teredo)  # (server, client): both are reached through it
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return carried


def is_public(address: IPAddress) -> bool:
    """True when Cortex may connect to `address` without CORTEX_ALLOW_PRIVATE_WEBHOOKS."""
    if isinstance(address, ipaddress.IPv4Address):
        return _is_public_v4(address)
    if address.ipv4_mapped is not None:  # the IPv4 address itself, written as IPv6
        return _is_public_v4(address.ipv4_mapped)
    # `is_reserved` covers ::/8 (IPv4-compatible ::a.b.c.d and 64:ff9b:1::/48 among it), which 3.11
    # calls global; the well-known NAT64 prefix inside it is judged by the IPv4 address it carries.
    own = (address.is_global and not address.is_multicast and not address.is_site_local
           and (not address.is_reserved or address in _NAT64))
    return own and all(_is_public_v4(v4) for v4 in _carried_v4(address))


async def check_url(url: str, *, allow_private: bool) -> list[str]:
    """Return the resolved addresses of `url`'s host, or raise BlockedUrl."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedUrl("only http and https URLs with a host are allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BlockedUrl("invalid port") from exc
    return await resolve(parts.hostname, port, allow_private=allow_private)


async def resolve(host: str, port: int, *, allow_private: bool) -> list[str]:
    """`host`'s addresses; UnresolvableHost when it does not resolve, BlockedUrl when (unless private
    addresses are allowed) any of them is not public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnresolvableHost(f"cannot resolve host {host!r}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))  # the resolver's order, once each
    if not allow_private:
        for raw in addresses:
            if not is_public(ipaddress.ip_address(raw.split("%")[0])):
                raise BlockedUrl(f"{host} resolves to a private or local address; refused")
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets and connects in one step, to the vetted address itself; TLS still verifies the
    certificate against the URL's host name (httpcore takes SNI and the hostname check from the URL)."""

    def __init__(self, allow_private: Callable[[], bool]) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    # The signatures are httpcore's interface, timeout parameters included.
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port, allow_private=self._allow_private())
        except BlockedUrl as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # getaddrinfo answers at least one address or raises
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are refused")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose every new connection goes through the guard. Environment proxies are not
    used with it (an explicit transport turns them off in httpx, and a proxy would resolve the name
    itself, outside the guard)."""

    def __init__(self, allow_private: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # httpx 0.28 (pinned) offers no network-backend option; its httpcore pool reads this attribute
        # for each connection it opens. tests/kit/test_url_guard.py fails if that ever stops holding.
        self._pool._network_backend = _GuardedBackend(allow_private)

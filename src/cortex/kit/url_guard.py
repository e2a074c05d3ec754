"""Refusing outbound URLs that resolve to private, loopback or link-local addresses (SSRF guard).

Used for webhooks (tool calls) and URL ingestion alike, twice: `check_url` before a request, for a
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
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BlockedUrl("invalid port") from exc
    return await resolve(parts.hostname, port, allow_private=allow_private)


async def resolve(host: str, port: int, *, allow_private: bool) -> list[str]:
    """`host`'s addresses; BlockedUrl when it does not resolve or (unless allowed) any is private."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedUrl(f"cannot resolve host {host!r}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))  # the resolver's order, once each
    if not allow_private:
        for raw in addresses:
            if _is_private(ipaddress.ip_address(raw.split("%")[0])):
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

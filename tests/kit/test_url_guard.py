from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import pytest

from cortex.kit.url_guard import BlockedUrl, GuardedTransport, check_url, is_public


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/x", "http://localhost/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
])
async def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(BlockedUrl):
        await check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///nohost", "http://x:99999/"])
async def test_malformed_or_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(BlockedUrl):
        await check_url(url, allow_private=True)


async def test_public_literal_and_allowed_private() -> None:
    assert await check_url("http://93.184.216.34/", allow_private=False) == ["93.184.216.34"]
    assert await check_url("http://127.0.0.1:9/", allow_private=True) == ["127.0.0.1"]


async def test_the_transport_vets_the_address_it_connects_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is public when checked and loopback when connected; the connection is refused."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    answers = iter(["93.184.216.34", "127.0.0.1"])
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def rebinding(host: str, port_: int, **kwargs: Any) -> list[Any]:
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port_))]
        return await real(host, port_, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    try:
        assert await check_url(f"http://rebind.test:{port}/", allow_private=False) == ["93.184.216.34"]
        async with httpx.AsyncClient(transport=GuardedTransport(allow_private=lambda: False)) as client:
            with pytest.raises(httpx.ConnectError, match="private or local address"):
                await client.get(f"http://rebind.test:{port}/")
            with pytest.raises(httpx.ConnectError, match="private or local address"):
                await client.get(f"http://127.0.0.1:{port}/")
        async with httpx.AsyncClient(transport=GuardedTransport(allow_private=lambda: True)) as client:
            response = await client.get(f"http://localhost:{port}/")
            assert response.status_code == 200 and response.text == "ok"
    finally:
        server.close()
        await server.wait_closed()


def teredo(server: str, client: str) -> str:
    """A Teredo address (RFC 4380): 2001:0::/32, the server, flags, then port and client inverted."""
    value = ((0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | (0xFFFF << 32)
             | (int(ipaddress.IPv4Address(client)) ^ 0xFFFF_FFFF))
    return str(ipaddress.IPv6Address(value))


NOT_GLOBAL = [
    "100.64.0.1", "100.100.100.200",  # carrier-grade NAT; the second is a cloud metadata service
    "192.0.0.8", "192.0.0.170",  # IETF protocol assignments
    "169.254.169.254", "127.0.0.1", "10.0.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "198.18.0.1",
    "2002:7f00:1::1", "2002:a00:1::1", "2002:6440:1::1",  # 6to4 around 127.0.0.1, 10.0.0.1, 100.64.0.1
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::5db8:d70e",  # NAT64: loopback, metadata; local-use
    teredo("65.54.227.120", "127.0.0.1"), teredo("65.54.227.120", "10.0.0.1"), teredo("10.0.0.1", "93.184.215.14"),
    "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::7f00:1",  # IPv4-mapped and IPv4-compatible
    "::1", "::", "fe80::1", "fc00::1", "fec0::1", "ff0e::1", "2001:db8::1", "100::1",
]
GLOBAL = ["93.184.215.14", "2606:4700::1", "::ffff:93.184.215.14", "2002:5db8:d70e::1", "64:ff9b::5db8:d70e"]


@pytest.mark.parametrize("address", NOT_GLOBAL)
def test_only_globally_reachable_addresses_are_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", GLOBAL)
def test_global_addresses_and_what_carries_them_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where the guard would connect and sends nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        raise httpcore.ConnectError("recorded; no packet sent")


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """host → the one address it resolves to; no other name resolves (and no query leaves the machine)."""
    answers: dict[str, str] = {}

    async def stub(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown in this test")
        address = answers[host]
        if ipaddress.ip_address(address).version == 6:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", stub)
    return answers


def recorded_client() -> tuple[httpx.AsyncClient, RecordingBackend]:
    transport = GuardedTransport(allow_private=lambda: False)
    recorder = RecordingBackend()
    transport._pool._network_backend._inner = recorder  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=transport), recorder


@pytest.mark.parametrize("address", NOT_GLOBAL)
async def test_a_name_resolving_to_a_non_global_address_is_never_connected(resolver: dict[str, str],
                                                                           address: str) -> None:
    resolver["target.test"] = address
    with pytest.raises(BlockedUrl, match="private or local address"):
        await check_url("http://target.test/latest/meta-data", allow_private=False)
    client, recorder = recorded_client()
    async with client:
        with pytest.raises(httpx.ConnectError, match="private or local address"):
            await client.get("http://target.test/latest/meta-data")
    assert recorder.calls == []


@pytest.mark.parametrize("address", GLOBAL)
async def test_a_global_address_passes_the_guard(resolver: dict[str, str], address: str) -> None:
    resolver["target.test"] = address
    assert await check_url("http://target.test/", allow_private=False) == [address]
    client, recorder = recorded_client()
    async with client:
        with pytest.raises(httpx.ConnectError, match="no packet sent"):
            await client.get("http://target.test:8443/")
    assert recorder.calls == [(address, 8443)]  # the vetted address itself, handed to the (fake) socket layer

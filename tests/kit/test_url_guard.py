from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from cortex.kit.url_guard import BlockedUrl, GuardedTransport, check_url


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

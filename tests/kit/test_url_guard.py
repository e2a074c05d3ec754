from __future__ import annotations

import pytest

from cortex.kit.url_guard import BlockedUrl, check_url


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

"""One contract, two implementations: in-process and a real Redis server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from cortex.kit.cache_backend import CacheBackend, MemoryCacheBackend, RedisCacheBackend


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    if request.param == "memory":
        built: CacheBackend = MemoryCacheBackend()
    else:
        built = RedisCacheBackend(request.getfixturevalue("redis_url"))
    yield built
    await built.close()


def _key() -> str:
    return f"cortex-test:{uuid.uuid4().hex}"


async def test_get_set_delete(backend: CacheBackend) -> None:
    key = _key()
    assert await backend.get(key) is None
    await backend.set(key, "value")
    assert await backend.get(key) == b"value"
    await backend.set(key, b"bytes")
    assert await backend.get(key) == b"bytes"
    assert await backend.delete(key, _key()) == 1
    assert await backend.get(key) is None


async def test_ttl_expires(backend: CacheBackend) -> None:
    key = _key()
    await backend.set(key, "short", ttl_seconds=0.2)
    assert await backend.get(key) == b"short"
    await asyncio.sleep(0.35)
    assert await backend.get(key) is None


async def test_incr_sets_expiry_once(backend: CacheBackend) -> None:
    key = _key()
    assert await backend.incr(key, ttl_seconds=0.4) == 1
    await asyncio.sleep(0.2)
    assert await backend.incr(key, 2, ttl_seconds=0.4) == 3  # does not push the expiry back
    await asyncio.sleep(0.3)
    assert await backend.get(key) is None
    assert await backend.incr(key) == 1


async def test_concurrent_increments_are_atomic(backend: CacheBackend) -> None:
    key = _key()
    await asyncio.gather(*(backend.incr(key, ttl_seconds=10) for _ in range(50)))
    assert await backend.get(key) == b"50"


async def test_publish_subscribe(backend: CacheBackend) -> None:
    channel = _key()
    received: list[bytes] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with backend.subscribe(channel) as messages:
            ready.set()
            async for message in messages:
                received.append(message)
                if len(received) == 2:
                    return

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(0.05)  # Redis confirms the subscription asynchronously
    assert await backend.publish(channel, "one") == 1
    await backend.publish(channel, b"two")
    await asyncio.wait_for(task, 5)
    assert received == [b"one", b"two"]
    assert await backend.publish(channel, "nobody") == 0

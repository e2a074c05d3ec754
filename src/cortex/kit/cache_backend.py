"""Shared key-value state: one interface, a Redis implementation and an in-process one.

Several workers share config caches, rate-limit counters and live events through Redis; a single
process without REDIS_URL gets the same behaviour in memory.

Redis down or restarting does not stop the service: a read that cannot reach it is a miss and a write
of cached state is skipped (the next reader loads it from PostgreSQL). What must not be lost silently
(a delete that invalidates a revoked key, a counter, a publish) still raises, and the API answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import redis.asyncio as aioredis
import redis.exceptions

logger = logging.getLogger(__name__)
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class CacheBackend(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes | str, ttl_seconds: float | None = None) -> None: ...
    async def delete(self, *keys: str) -> int: ...
    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        """Add `amount` and return the new value; the expiry is set when the key is created."""
        ...
    async def publish(self, channel: str, message: bytes | str) -> int: ...
    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an async iterator of messages (bytes)."""
        ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class MemoryCacheBackend:
    """In-process implementation for a single worker."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    async def get(self, key: str) -> bytes | None:
        item = self._live(key)
        return item[0] if item else None

    async def set(self, key: str, value: bytes | str, ttl_seconds: float | None = None) -> None:
        expires = time.monotonic() + ttl_seconds if ttl_seconds else None
        self._data[key] = (_as_bytes(value), expires)

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                removed += 1
            self._data.pop(key, None)
        return removed

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        item = self._live(key)
        if item is None:
            expires = time.monotonic() + ttl_seconds if ttl_seconds else None
            value = amount
        else:
            value = int(item[0]) + amount
            expires = item[1]
        self._data[key] = (str(value).encode(), expires)
        return value

    async def publish(self, channel: str, message: bytes | str) -> int:
        queues = list(self._subscribers.get(channel, ()))
        for queue in queues:
            queue.put_nowait(_as_bytes(message))
        return len(queues)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribers[channel].add(queue)

        async def messages() -> AsyncIterator[bytes]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            self._subscribers[channel].discard(queue)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisCacheBackend:
    name = "redis"

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: aioredis.Redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=5)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(key)
        except _UNREACHABLE as exc:
            logger.warning("redis unavailable: cache read is a miss", extra={"error_type": type(exc).__name__})
            return None
        return None if value is None else _as_bytes(value)

    async def set(self, key: str, value: bytes | str, ttl_seconds: float | None = None) -> None:
        try:
            if ttl_seconds:
                await self._client.set(key, value, px=max(1, int(ttl_seconds * 1000)))
            else:
                await self._client.set(key, value)
        except _UNREACHABLE as exc:
            logger.warning("redis unavailable: cache write skipped", extra={"error_type": type(exc).__name__})

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*keys))

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        # One round trip, atomic: the expiry is only set by the call that created the key.
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            if ttl_seconds:
                pipe.pexpire(key, max(1, int(ttl_seconds * 1000)), nx=True)
            results = await pipe.execute()
        return int(results[0])

    async def publish(self, channel: str, message: bytes | str) -> int:
        return int(await self._client.publish(channel, message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(channel)

        async def messages() -> AsyncIterator[bytes]:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    yield _as_bytes(item["data"])

        try:
            yield messages()
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


def create_cache_backend(redis_url: str | None) -> CacheBackend:
    if redis_url:
        return RedisCacheBackend(redis_url)
    return MemoryCacheBackend()

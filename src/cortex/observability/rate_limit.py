"""Requests per minute per API key and per company, shared by every worker through Redis.

The counting is the `limits` library's moving window (exact: no burst of twice the limit around a
window edge) on its async Redis storage, or its memory storage when there is no REDIS_URL. Because
the counters live in Redis, N processes on one Redis together admit the limit, not N times it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from cortex.settings import Settings

RATE_LIMITER = "rate_limiter"  # its key in Runtime.components


@dataclass(frozen=True)
class Check:
    """One limit to hit: `scope` names it in headers and metrics (key | company | client)."""

    scope: str
    identity: str
    per_minute: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scope: str  # the binding limit: the refused one, or the one with the fewest requests left
    limit: int
    remaining: int
    reset_seconds: int  # until the window frees a slot for this limit

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_seconds)}


def _async_uri(redis_url: str) -> str:
    # limits picks its async storages by scheme: async+redis://, async+rediss://, async+redis+unix://
    if redis_url.startswith(("redis://", "rediss://")):
        return "async+" + redis_url
    if redis_url.startswith("unix://"):
        return "async+redis+" + redis_url
    raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if settings.redis_url:
            # redis-py (pinned) rather than limits' default coredis, which this project doesn't install.
            return cls(RedisStorage(_async_uri(settings.redis_url), implementation="redispy",
                                    key_prefix=settings.rate_limit_prefix, wrap_exceptions=True,
                                    socket_connect_timeout=2, socket_timeout=2))
        return cls(MemoryStorage())

    async def hit(self, checks: list[Check]) -> Decision:
        """Hit each limit in order; the first that refuses stops the rest (they are not charged).

        Raises `limits.errors.StorageError` when Redis cannot be reached.
        """
        items = [RateLimitItemPerMinute(check.per_minute) for check in checks]
        for check, item in zip(checks, items, strict=True):
            if not await self._strategy.hit(item, check.scope, check.identity):
                stats = await self._strategy.get_window_stats(item, check.scope, check.identity)
                return Decision(False, check.scope, check.per_minute, 0, _seconds_until(stats.reset_time))
        # Admitted: the windows' state for the headers, read together (one round trip's wait, not one per limit).
        all_stats = await asyncio.gather(*(self._strategy.get_window_stats(item, check.scope, check.identity)
                                           for check, item in zip(checks, items, strict=True)))
        decisions = [Decision(True, check.scope, check.per_minute, max(0, stats.remaining),
                              _seconds_until(stats.reset_time))
                     for check, stats in zip(checks, all_stats, strict=True)]
        return min(decisions, key=lambda decision: decision.remaining)


def _seconds_until(moment: float) -> int:
    return max(1, math.ceil(moment - time.time()))

"""A variant of the shared runtime with its own settings and rate limiter, for one test's app."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from limits.aio.storage import MemoryStorage

from cortex.app import create_app
from cortex.kit.runtime import Runtime
from cortex.observability.rate_limit import RATE_LIMITER, RateLimiter


def variant(runtime: Runtime, limiter: RateLimiter | None = None, **settings: Any) -> Runtime:
    changed = runtime.settings.model_copy(update=settings)
    components = {**runtime.components, RATE_LIMITER: limiter or RateLimiter(MemoryStorage())}
    return dataclasses.replace(runtime, settings=changed, components=components)


@asynccontextmanager
async def app_client(runtime: Runtime, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime), raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://cortex.test") as http:
        yield http

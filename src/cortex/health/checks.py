"""Dependency checks for /health/detailed: each returns "ok", "error: ..." or "not configured"."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from cortex.kit.runtime import Runtime
from cortex.settings import TIERS

CHECK_TIMEOUT_SECONDS = 3.0


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")


async def check_postgres(runtime: Runtime) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), runtime.database.session() as session:
            await session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return _error(exc)


async def check_redis(runtime: Runtime) -> str:
    if not runtime.settings.redis_url:
        return "not configured"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await runtime.cache.ping()
        return "ok"
    except Exception as exc:
        return _error(exc)


async def check_litellm(runtime: Runtime) -> str:
    settings = runtime.settings
    if not any(settings.model_for_tier(t) for t in TIERS):
        return "not configured"
    if not settings.llm_api_base:
        # Hosted providers: configured, and a probe would spend money, so we do not call them.
        return "ok"
    try:
        headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS) as client:
            response = await client.get(settings.llm_api_base.rstrip("/") + "/models", headers=headers)
        if response.status_code >= 500:
            return f"error: HTTP {response.status_code}"
        return "ok"
    except Exception as exc:
        return _error(exc)

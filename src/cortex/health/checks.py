"""Dependency checks for /health/detailed: each says "ok", "not configured" or "error: <reason>".

The reason is one of a few fixed phrases ("unreachable", "timeout", "query failed", "http 500"): the
exception itself goes to the server log, never into the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import redis.exceptions
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from cortex.kit.runtime import Runtime
from cortex.settings import TIERS

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0
# The model provider is asked at most this often per process: the endpoint may be polled, the provider
# must not be.
PROVIDER_PROBE_TTL_SECONDS = 30.0
HEALTH_CHECKS = "health_checks"  # this process's checks, in Runtime.components


def _failed(check: str, exc: BaseException, reason: str) -> str:
    logger.warning("health check failed", extra={"check": check, "reason": reason}, exc_info=exc)
    return f"error: {reason}"


def _reason(exc: BaseException, otherwise: str) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException | redis.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, OSError | httpx.TransportError | redis.exceptions.ConnectionError):
        return "unreachable"
    return otherwise


class HealthChecks:
    """One per process (see `health_checks`): holds the provider probe's cached answer and the engine
    behind the PostgreSQL check."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._probe_engine: AsyncEngine | None = None
        self._provider: tuple[tuple[str, str | None], float, str] | None = None  # (target, probed at, answer)
        self._provider_lock = asyncio.Lock()

    async def postgres(self) -> str:
        """SELECT 1 over a new connection: a pooled one keeps working while the server refuses new ones
        (a smart shutdown, a database closed to connections), which is what the next requests will need."""
        stage = "unreachable"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), self._engine().connect() as connection:
                stage = "query failed"
                await connection.execute(text("SELECT 1"))
            return "ok"
        except Exception as exc:
            return _failed("postgres", exc, "timeout" if isinstance(exc, TimeoutError) else stage)

    def _engine(self) -> AsyncEngine:
        if self._probe_engine is None:
            served = self.runtime.database.connect()
            self._probe_engine = create_async_engine(served.url, poolclass=NullPool,
                                                     connect_args={"timeout": CHECK_TIMEOUT_SECONDS})
        return self._probe_engine

    async def redis(self) -> str:
        if not self.runtime.settings.redis_url:
            return "not configured"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self.runtime.cache.ping()
            return "ok"
        except Exception as exc:
            return _failed("redis", exc, _reason(exc, "failed"))

    async def litellm(self) -> str:
        settings = self.runtime.settings
        if not any(settings.model_for_tier(t) for t in TIERS):
            return "not configured"
        if not settings.llm_api_base:
            # Hosted providers: configured, and a probe would spend money, so we do not call them.
            return "ok"
        target = (settings.llm_api_base, settings.llm_api_key)
        async with self._provider_lock:  # concurrent polls share one probe
            cached = self._provider
            if cached is not None and cached[0] == target and time.monotonic() - cached[1] < PROVIDER_PROBE_TTL_SECONDS:
                return cached[2]
            answer = await self._probe_provider(*target)
            self._provider = (target, time.monotonic(), answer)
            return answer

    @staticmethod
    async def _probe_provider(api_base: str, api_key: str | None) -> str:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS) as client:
                response = await client.get(api_base.rstrip("/") + "/models", headers=headers)
        except Exception as exc:
            return _failed("litellm", exc, _reason(exc, "failed"))
        # 404: a proxy that serves no model list still serves completions. 401/403: our key is refused.
        if response.status_code >= 500 or response.status_code in (401, 403):
            logger.warning("health check failed", extra={"check": "litellm", "status": response.status_code})
            return f"error: http {response.status_code}"
        return "ok"

    async def aclose(self) -> None:
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
            self._probe_engine = None


def health_checks(runtime: Runtime) -> HealthChecks:
    """This runtime's checks, made on first use (a runtime copied with other settings gets its own)."""
    checks = runtime.components.get(HEALTH_CHECKS)
    if not isinstance(checks, HealthChecks) or checks.runtime is not runtime:
        checks = HealthChecks(runtime)
        runtime.components[HEALTH_CHECKS] = checks
    return checks

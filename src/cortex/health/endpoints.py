"""`GET /health` for load balancers (touches nothing) and `GET /health/detailed` for operators (each
dependency checked; opened by the scraper token or a key with the `metrics` scope)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from cortex import __version__
from cortex.health.checks import health_checks
from cortex.kit.deps import RuntimeDep
from cortex.memory.component import extraction_status
from cortex.observability.endpoints import metrics_reader

health_router = APIRouter(tags=["health"])


@health_router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@health_router.get("/health/detailed", dependencies=[Depends(metrics_reader)])
async def health_detailed(runtime: RuntimeDep) -> dict[str, Any]:
    checks = health_checks(runtime)
    postgres, redis, litellm = await asyncio.gather(checks.postgres(), checks.redis(), checks.litellm())
    report = {"postgres": postgres, "redis": redis, "litellm": litellm,
              "memory_extraction": extraction_status(runtime.settings)}
    degraded = any(value.startswith("error") for value in report.values())
    return {"status": "degraded" if degraded else "ok", "version": __version__, "checks": report}

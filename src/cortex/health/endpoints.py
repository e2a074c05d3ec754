from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from cortex import __version__
from cortex.health.checks import check_litellm, check_postgres, check_redis
from cortex.kit.deps import RuntimeDep
from cortex.memory.component import extraction_status

health_router = APIRouter(tags=["health"])


@health_router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@health_router.get("/health/detailed")
async def health_detailed(runtime: RuntimeDep) -> dict[str, Any]:
    postgres, redis, litellm = await asyncio.gather(
        check_postgres(runtime), check_redis(runtime), check_litellm(runtime)
    )
    checks = {"postgres": postgres, "redis": redis, "litellm": litellm,
              "memory_extraction": extraction_status(runtime.settings)}
    degraded = any(value.startswith("error") for value in checks.values())
    return {"status": "degraded" if degraded else "ok", "version": __version__, "checks": checks}

"""`/v1/cache`: warm with company-written pairs, flush, and stats (scope cache)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from cortex.agents.service import build_config, get_agent
from cortex.auth.deps import CacheAuth
from cortex.cache.schemas import CacheFlushResult, CacheStats, CacheWarm, CacheWarmResult
from cortex.cache.service import SemanticCache
from cortex.kit.deps import RuntimeDep
from cortex.kit.errors import ServiceUnavailable
from cortex.kit.runtime import Runtime
from cortex.pipeline.ports import SEMANTIC_CACHE

cache_router = APIRouter(prefix="/v1/cache", tags=["cache"])


def _cache(runtime: Runtime) -> SemanticCache:
    component = runtime.components.get(SEMANTIC_CACHE)
    if not isinstance(component, SemanticCache):
        raise ServiceUnavailable("the semantic cache is not installed")
    return component


@cache_router.post("/warm", response_model=CacheWarmResult)
async def warm(body: CacheWarm, principal: CacheAuth, runtime: RuntimeDep) -> CacheWarmResult:
    principal.require_company(body.company_id)
    async with runtime.database.session() as session:
        agent = await build_config(session, principal.company_id, body.agent_id)
    stored, errored = await _cache(runtime).warm(agent, [(p.question, p.answer) for p in body.pairs])
    return CacheWarmResult(pairs_stored=stored, pairs_errored=errored, pairs_total=len(body.pairs))


@cache_router.delete("/flush", response_model=CacheFlushResult)
async def flush(principal: CacheAuth, runtime: RuntimeDep, company_id: uuid.UUID,
                agent_id: uuid.UUID | None = None) -> CacheFlushResult:
    principal.require_company(company_id)
    if agent_id is not None:
        async with runtime.database.session() as session:
            await get_agent(session, principal.company_id, agent_id)  # 404 for another company's agent
    deleted = await _cache(runtime).flush(principal.company_id, agent_id)
    return CacheFlushResult(entries_deleted=deleted)


@cache_router.get("/stats", response_model=CacheStats)
async def stats(principal: CacheAuth, runtime: RuntimeDep) -> CacheStats:
    return CacheStats.model_validate(await _cache(runtime).stats(principal.company_id))

"""05 Cache Check: a semantic cache hit answers at once and skips services 06-08."""

from __future__ import annotations

from cortex.kit.runtime import Runtime
from cortex.pipeline.context import RequestContext
from cortex.pipeline.ports import SEMANTIC_CACHE, SemanticCachePort, UnavailableSemanticCache


def cache_port(runtime: Runtime) -> SemanticCachePort:
    port: SemanticCachePort = runtime.components.get(SEMANTIC_CACHE) or UnavailableSemanticCache()
    return port


async def check(ctx: RequestContext, runtime: Runtime) -> None:
    agent = ctx.config
    port = cache_port(runtime)
    if not agent.settings.cache.enabled:
        ctx.notes["cache"] = "disabled for this agent"
        return
    if not port.available:
        ctx.notes["cache"] = "unavailable: no semantic cache component is installed"
        return
    with ctx.timed("cache_check"):
        ctx.cache_hit = await port.lookup(agent=agent, message=ctx.request.message, history=ctx.history,
                                          customer_id=ctx.request.customer_id)
        ctx.cache_checked = True

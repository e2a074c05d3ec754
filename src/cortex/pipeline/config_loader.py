"""01 Config Loader: the agent's configuration through the shared config cache (5 minutes)."""

from __future__ import annotations

from cortex.agents.schemas import AgentConfig
from cortex.agents.service import build_config
from cortex.kit.runtime import Runtime
from cortex.pipeline.context import RequestContext


async def load(ctx: RequestContext, runtime: Runtime) -> None:
    with ctx.timed("config_load"):
        company_id, agent_id = ctx.company_id, ctx.request.agent_id

        async def from_database() -> AgentConfig:
            async with runtime.database.session() as session:
                return await build_config(session, company_id, agent_id)  # NotFound for another company's

        lookup = await runtime.config_cache.get(company_id, agent_id, from_database)
        ctx.agent, ctx.config_cache_hit = lookup.config, lookup.cache_hit

"""The metrics dashboard, computed from the stored replies (true across restarts and workers).

Every reply row carries what its request measured (config cache hit, step timings, tier, model,
tokens, cost, tool rounds, semantic cache lookup and hit), so the dashboard is a few aggregates over
the company's `messages`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Float, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.db.models import Message
from cortex.observability.schemas import (
    AgentCompilation,
    ConfigLoading,
    Cost,
    Dashboard,
    ModelCost,
    ModelRouting,
    SemanticCache,
)


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _ms(value: float | Decimal | None) -> float:
    return round(float(value), 3) if value is not None else 0.0


async def dashboard(session: AsyncSession, company_id: uuid.UUID, since: datetime,
                    agent_id: uuid.UUID | None = None) -> Dashboard:
    m = Message
    replies = and_(m.company_id == company_id, m.role == "assistant", m.created_at >= since)
    if agent_id is not None:
        replies = and_(replies, m.agent_id == agent_id)
    loaded = m.config_cache_hit.is_not(None)
    generated = m.cached.is_(False)  # the agent compiler ran (a semantic cache hit skips it)
    totals = (await session.execute(select(
        func.count().filter(loaded),
        func.count().filter(m.config_cache_hit.is_(True)),
        func.avg(cast(m.step_timings["config_load"].astext, Float)).filter(loaded),
        func.count().filter(m.tier.is_not(None)),
        func.avg(m.llm_latency_ms).filter(m.llm_latency_ms.is_not(None)),
        func.count().filter(generated),
        func.count().filter(generated, m.tool_rounds > 0),
        func.avg(m.tool_rounds).filter(generated),
        func.count().filter(m.cached.is_(True)),
        func.count().filter(m.cache_checked.is_(True), m.cached.is_(False)),
        func.avg(m.cache_similarity).filter(m.cached.is_(True)),
        func.coalesce(func.sum(m.cost_usd), 0),
        func.coalesce(func.sum(m.tokens_input), 0),
        func.coalesce(func.sum(m.tokens_output), 0),
        func.count(),
    ).where(replies))).one()
    (total_loads, config_hits, avg_config_ms, total_routed, avg_llm_ms, generated_count, with_tools,
     avg_rounds, cache_hits, cache_misses, avg_similarity, cost, tokens_in, tokens_out, reply_count) = totals

    by_tier = {tier: int(count) for tier, count in (await session.execute(
        select(m.tier, func.count()).where(replies, m.tier.is_not(None)).group_by(m.tier).order_by(m.tier)
    )).all()}
    by_model = {
        model: ModelCost(replies=int(count), cost_usd=float(model_cost), tokens_input=int(t_in),
                         tokens_output=int(t_out))
        for model, count, model_cost, t_in, t_out in (await session.execute(
            select(m.model_used, func.count(), func.coalesce(func.sum(m.cost_usd), 0),
                   func.coalesce(func.sum(m.tokens_input), 0), func.coalesce(func.sum(m.tokens_output), 0))
            .where(replies, m.model_used.is_not(None)).group_by(m.model_used).order_by(m.model_used)
        )).all()
    }
    lookups = int(cache_hits) + int(cache_misses)
    per_reply = round(float(cost) / reply_count, 8) if reply_count else 0.0
    return Dashboard(
        since=since, agent_id=agent_id,
        config_loading=ConfigLoading(cache_hit_rate=_ratio(config_hits, total_loads), total_loads=total_loads,
                                     cache_hits=config_hits, avg_duration_ms=_ms(avg_config_ms)),
        model_routing=ModelRouting(total_routed=total_routed, by_tier=by_tier),
        agent_compilation=AgentCompilation(avg_llm_latency_ms=_ms(avg_llm_ms),
                                           tool_call_rate=_ratio(with_tools, generated_count),
                                           avg_tool_rounds=round(float(avg_rounds or 0), 4)),
        semantic_cache=SemanticCache(lookups=lookups, hits=cache_hits, misses=cache_misses,
                                     hit_rate=_ratio(cache_hits, lookups),
                                     avg_similarity=round(float(avg_similarity), 4) if avg_similarity else None),
        cost=Cost(total_cost_usd=float(cost), tokens_input=int(tokens_in), tokens_output=int(tokens_out),
                  replies=reply_count, avg_cost_per_reply_usd=per_reply,
                  by_model=by_model),
    )

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class ConfigLoading(BaseModel):
    cache_hit_rate: float
    total_loads: int
    cache_hits: int
    avg_duration_ms: float


class ModelRouting(BaseModel):
    total_routed: int
    by_tier: dict[str, int]


class AgentCompilation(BaseModel):
    avg_llm_latency_ms: float
    tool_call_rate: float
    avg_tool_rounds: float


class SemanticCache(BaseModel):
    lookups: int
    hits: int
    misses: int
    hit_rate: float
    avg_similarity: float | None


class ModelCost(BaseModel):
    replies: int
    cost_usd: float
    tokens_input: int
    tokens_output: int


class Cost(BaseModel):
    total_cost_usd: float
    tokens_input: int
    tokens_output: int
    replies: int
    avg_cost_per_reply_usd: float
    by_model: dict[str, ModelCost]


class Dashboard(BaseModel):
    since: datetime
    agent_id: uuid.UUID | None
    config_loading: ConfigLoading
    model_routing: ModelRouting
    agent_compilation: AgentCompilation
    semantic_cache: SemanticCache
    cost: Cost

"""Semantic cache API schemas."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cortex.cache.service import MAX_QUESTION_CHARS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarmPair(Strict):
    question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]
    answer: Annotated[str, Field(min_length=1, max_length=10_000)]


class CacheWarm(Strict):
    company_id: uuid.UUID
    agent_id: uuid.UUID
    pairs: Annotated[list[WarmPair], Field(min_length=1, max_length=20_000)]


class CacheWarmResult(BaseModel):
    status: Literal["completed"] = "completed"
    pairs_stored: int
    pairs_errored: int
    pairs_total: int


class CacheFlushResult(BaseModel):
    status: Literal["flushed"] = "flushed"
    entries_deleted: int


class CacheAgentStats(BaseModel):
    agent_id: uuid.UUID
    num_docs: int = Field(description="entries a lookup can still return (current configuration, not expired)")
    num_records: int = Field(description="all stored rows, retired and expired ones included")


class HotIndexStats(BaseModel):
    enabled: bool
    state: Literal["building", "complete", "empty"] = Field(
        description="this worker's in-memory copy of the company's scopes: loading now, loaded, or none loaded")
    scopes: int
    entries: int


class CacheStats(BaseModel):
    status: Literal["ready", "building", "missing"] = Field(
        description="the PostgreSQL HNSW index over the entries' embeddings")
    index_name: str
    num_docs: int
    num_records: int
    indexing: bool = Field(description="whether this worker is loading one of the company's scopes right now")
    hits: int = Field(description="lookups that hit, counted in the cache backend (Redis: across workers and "
                      "restarts; in-process: since this worker started)")
    misses: int
    hit_rate: float
    by_agent: list[CacheAgentStats] = []
    hot_index: HotIndexStats | None = None

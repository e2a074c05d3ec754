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


class CacheStats(BaseModel):
    status: str
    index_name: str
    num_docs: int
    num_records: int
    indexing: bool
    hits: int
    misses: int
    hit_rate: float

"""The small interfaces the chat pipeline calls for knowledge, memory and the semantic cache.

Each component registers its implementation in `Runtime.components` under the key named here; until
then the pipeline uses the `Unavailable*` ones, which return nothing and say so in the context.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cortex.agents.schemas import AgentConfig

KNOWLEDGE = "knowledge"
MEMORY = "memory"
SEMANTIC_CACHE = "semantic_cache"
PIPELINE = "pipeline"  # the ChatPipeline itself, built by app.wire_components


@dataclass(frozen=True)
class KnowledgeChunk:
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    text: str
    heading_path: list[str]
    score: float  # the retrieval's fused rank score: comparable within one result list only
    # The knowledge document (file, URL, agent documents) the chunk comes from, to cite.
    document_id: uuid.UUID | None = None
    document_name: str | None = None
    # Cosine of the query with the chunk's stored vector, from the retrieval's own vector search (None
    # when only full-text search found the chunk): what the offline responder weighs a passage by.
    similarity: float | None = None


@dataclass(frozen=True)
class MemoryFact:
    id: uuid.UUID
    fact: str
    category: str
    confidence: float
    score: float


@dataclass(frozen=True)
class HistoryTurn:
    role: str  # "customer" | "assistant"
    content: str


@dataclass(frozen=True)
class CacheHit:
    entry_id: uuid.UUID
    answer: str
    similarity: float
    matched_question: str


@dataclass
class CompletedTurn:
    """What Post Actions hands to memory and the cache once a generated reply exists."""

    company_id: uuid.UUID
    agent: AgentConfig
    conversation_id: uuid.UUID
    customer_id: str
    customer_message_id: uuid.UUID
    reply_message_id: uuid.UUID
    message: str
    reply: str
    history: list[HistoryTurn] = field(default_factory=list)
    actions_executed: list[str] = field(default_factory=list)
    memory_fact_ids: list[uuid.UUID] = field(default_factory=list)


@runtime_checkable
class KnowledgePort(Protocol):
    available: bool

    async def retrieve(self, *, company_id: uuid.UUID, agent: AgentConfig, query: str, top_k: int,
                       warnings: list[str] | None = None) -> list[KnowledgeChunk]:
        """`warnings` receives what degraded the retrieval (a query embedding that failed, ...)."""
        ...


@runtime_checkable
class MemoryPort(Protocol):
    available: bool

    async def recall(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, customer_id: str, query: str,
                     token_budget: int) -> list[MemoryFact]: ...

    def extracts_for(self, agent: AgentConfig) -> bool:
        """Whether a turn of this agent gets a fact-extraction job (a model to run it on exists)."""
        ...

    async def after_turn(self, turn: CompletedTurn) -> None:
        """Fact extraction for a stored turn; run by its durable job (cortex.pipeline.post_actions)."""
        ...


@runtime_checkable
class SemanticCachePort(Protocol):
    available: bool

    async def lookup(self, *, agent: AgentConfig, message: str, history: list[HistoryTurn],
                     customer_id: str) -> CacheHit | None: ...

    async def store(self, turn: CompletedTurn) -> None:
        """Decides by its own rules whether the turn may be cached, and stores it if so."""
        ...

    async def forget_customer(self, *, company_id: uuid.UUID, customer_id: str) -> int:
        """Deletes every entry generated from this customer's turns (right to be forgotten); returns the count."""
        ...


class UnavailableKnowledge:
    available = False

    async def retrieve(self, *, company_id: uuid.UUID, agent: AgentConfig, query: str, top_k: int,
                       warnings: list[str] | None = None) -> list[KnowledgeChunk]:
        return []


class UnavailableMemory:
    available = False

    async def recall(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, customer_id: str, query: str,
                     token_budget: int) -> list[MemoryFact]:
        return []

    def extracts_for(self, agent: AgentConfig) -> bool:
        return False

    async def after_turn(self, turn: CompletedTurn) -> None:
        return None


class UnavailableSemanticCache:
    available = False

    async def lookup(self, *, agent: AgentConfig, message: str, history: list[HistoryTurn],
                     customer_id: str) -> CacheHit | None:
        return None

    async def store(self, turn: CompletedTurn) -> None:
        return None

    async def forget_customer(self, *, company_id: uuid.UUID, customer_id: str) -> int:
        return 0

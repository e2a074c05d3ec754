"""The relational data model. Every row that belongs to a company carries `company_id`."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB, uuid.UUID: UUID(as_uuid=True)}


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _company_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Company(TimestampMixin, Base):
    __tablename__ = "companies"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)


class User(TimestampMixin, Base):
    """A portal user: logs in with email and password and manages the company's keys."""

    __tablename__ = "users"
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_keys"
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the raw key: keys carry 190+ bits of randomness, so a slow hash buys nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class AgentAction(Base):
    __tablename__ = "agent_actions"
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    action_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("action_definitions.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class AgentKnowledgeSource(Base):
    __tablename__ = "agent_knowledge_sources"
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_sources.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class Agent(TimestampMixin, Base):
    __tablename__ = "agents"
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    name: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    personality: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    dialect: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    faqs: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    scenarios: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    workflow_faqs: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # Bumped on every change of the agent itself / of the knowledge it can see; the semantic cache
    # scopes its entries by both so a change makes older answers unreachable at once.
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    knowledge_version: Mapped[int] = mapped_column(Integer, default=1)


class ActionDefinition(TimestampMixin, Base):
    __tablename__ = "action_definitions"
    __table_args__ = (UniqueConstraint("company_id", "name"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    source_type: Mapped[str] = mapped_column(String(32), default="action")
    webhook_url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(8), default="POST")
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    auth_type: Mapped[str] = mapped_column(String(16), default="none")
    # Fernet token of the JSON credentials; never returned by the API.
    auth_credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    parameters_schema: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    path_template: Mapped[str | None] = mapped_column(Text)
    query_schema: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    rate_limit: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    run_after_reply: Mapped[bool] = mapped_column(Boolean, default=False)


class KnowledgeSource(TimestampMixin, Base):
    __tablename__ = "knowledge_sources"
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    source_type: Mapped[str] = mapped_column(String(32), default="file")
    embedding_model: Mapped[str] = mapped_column(String(64), default="minilm")
    status: Mapped[str] = mapped_column(String(32), default="empty")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("company_id", "customer_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    customer_id: Mapped[str] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    organization: Mapped[str | None] = mapped_column(String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    segments: Mapped[list[Any]] = mapped_column(JSONB, default=list)


class Conversation(TimestampMixin, Base):
    __tablename__ = "conversations"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    company_id: Mapped[uuid.UUID] = _company_fk()
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32), default="whatsapp")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_company_created", "company_id", "created_at"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    customer_id: Mapped[str | None] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(16))  # customer | assistant
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | pending | failed
    channel: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    model_used: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str | None] = mapped_column(String(16))
    tier_reason: Mapped[str | None] = mapped_column(Text)
    tokens_input: Mapped[int] = mapped_column(Integer, default=0)
    tokens_output: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 8), default=Decimal(0))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    step_timings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    context_tokens: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    actions_executed: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    tool_calls: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    tool_rounds: Mapped[int] = mapped_column(Integer, default=0)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_similarity: Mapped[float | None] = mapped_column(Float)
    cache_entry_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    config_cache_hit: Mapped[bool | None] = mapped_column(Boolean)
    llm_latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KnowledgeChunkSet(Base):
    """One complete embedding of a source's chunks with one model. Readers follow the source's single
    `active` set; an ingestion or re-embed builds a new set and swaps it in with one commit."""

    __tablename__ = "knowledge_chunk_sets"
    __table_args__ = (
        Index("ux_knowledge_chunk_sets_active", "source_id", unique=True, postgresql_where=text("status = 'active'")),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    embedding_model: Mapped[str] = mapped_column(String(64))
    dimensions: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="building")  # building | active | failed
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KnowledgeChunk(Base):
    __tablename__ = "knowledge_chunks"
    # The per-model partial HNSW indexes are expression indexes created in migration 0002_knowledge.
    __table_args__ = (
        Index("ix_knowledge_chunks_tsv_simple", "tsv_simple", postgresql_using="gin"),
        Index("ix_knowledge_chunks_tsv_english", "tsv_english", postgresql_using="gin"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    set_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("knowledge_chunk_sets.id", ondelete="CASCADE"), index=True)
    document_ref: Mapped[str] = mapped_column(Text)  # file name, URL or FAQ/scenario reference
    position: Mapped[int] = mapped_column(Integer)
    heading_path: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    embedding_model: Mapped[str] = mapped_column(String(64))
    # Untyped: dimensions vary by model; each model has a partial HNSW index over a cast (migration 0002).
    embedding: Mapped[Any] = mapped_column(Vector())
    tsv_simple: Mapped[Any] = mapped_column(TSVECTOR, Computed(
        "setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', text), 'B')",
        persisted=True))
    tsv_english: Mapped[Any] = mapped_column(TSVECTOR, Computed(
        "setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', text), 'B')",
        persisted=True))


class KnowledgeJob(Base):
    """A background ingestion; persisted so that any worker can report on it."""

    __tablename__ = "knowledge_jobs"
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    kind: Mapped[str] = mapped_column(String(32))  # file | url | documents | reembed
    source_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | completed | failed
    progress: Mapped[int] = mapped_column(Integer, default=0)
    documents_processed: Mapped[int] = mapped_column(Integer, default=0)
    chunks_created: Mapped[int] = mapped_column(Integer, default=0)
    chunks_embedded: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

"""The relational data model. Every row that belongs to a company carries `company_id`."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
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


class PortalSession(Base):
    """One portal login. The JWT carries its id as `jti`; a token whose session is unknown, revoked
    or expired is refused, so logout (and deleting the user or company) ends it on every worker."""

    __tablename__ = "portal_sessions"
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    company_id: Mapped[uuid.UUID] = _company_fk()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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
    # Unique per company (where set): the `model` name OpenAI-compatible clients call the agent by.
    __table_args__ = (Index("uq_agents_company_slug", "company_id", "slug", unique=True),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str | None] = mapped_column(String(64))
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
    """The client names a conversation by `id`; each company has its own ids, so the key is both."""

    __tablename__ = "conversations"
    __table_args__ = (
        PrimaryKeyConstraint("company_id", "id", name="conversations_pkey"),
        # The portal's list: newest activity first, a page at a time.
        Index("ix_conversations_company_updated", "company_id", text("updated_at DESC"), text("id DESC")),
    )
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # No index of its own: the primary key leads with it.
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32), default="whatsapp")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_company_created", "company_id", "created_at"),
        # The sweep of messages left pending (cortex.conversations.pending): only those rows.
        Index("ix_messages_pending", "created_at", postgresql_where=text("status = 'pending'")),
        Index("ix_messages_company_updated", "company_id", "updated_at"),
        Index("ix_messages_company_failed", "company_id", "conversation_id",
              postgresql_where=text("status = 'failed'")),
        ForeignKeyConstraint(["company_id", "conversation_id"], ["conversations.company_id", "conversations.id"],
                             ondelete="CASCADE", name="messages_conversation_fkey"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    conversation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
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
    # Whether a semantic cache lookup ran for this reply (a lookup without a hit is a miss).
    cache_checked: Mapped[bool | None] = mapped_column(Boolean)
    llm_latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Its status settles and post-reply tool calls join it after it is written (migration 0015_list_sync).
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


# --- customer memory (issue 5) -------------------------------------------------------------------------

MEMORY_EMBEDDING_DIMENSIONS = 384  # minilm: facts are always embedded with the default offline model


class MemoryFact(TimestampMixin, Base):
    """A durable fact about one customer of one company, optionally scoped to one agent."""

    __tablename__ = "memory_facts"
    __table_args__ = (
        # Every read filters by company and customer, and recall scans that customer's rows exactly.
        # No HNSW index on purpose: filtered by customer it returned 2 of 12 rows, and the exact scan of
        # 1,000 facts takes a few milliseconds (bench/memory_recall.py measures both).
        Index("ix_memory_facts_customer", "company_id", "customer_id"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(200))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    fact: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(16), default="general")
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    # What the fact is about ("home_address") and its value, when extraction named them: a new value
    # for the same subject supersedes the old fact.
    subject: Mapped[str | None] = mapped_column(String(120))
    value: Mapped[str | None] = mapped_column(Text)
    # Half precision: ranking is unchanged at this size, and a row with both vectors stays small
    # enough to be read inline (no TOAST fetch per row when recall scans a customer's facts).
    embedding: Mapped[Any] = mapped_column(HALFVEC(MEMORY_EMBEDDING_DIMENSIONS))
    # The subject's words ("home address") embedded alone: follow-up questions name the attribute they
    # are about far more often than its value, so recall also matches on this.
    subject_embedding: Mapped[Any | None] = mapped_column(HALFVEC(MEMORY_EMBEDDING_DIMENSIONS))
    source: Mapped[str] = mapped_column(String(64), default="manual")
    source_message_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Computed once at insert so recall's token budget needs no tokenizer call per fact (NULL: count it).
    token_count: Mapped[int | None] = mapped_column(Integer)
    # The customer-support concepts its subject names (cortex.memory.concepts), for recall's concept match.
    concepts: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    # No foreign key: deleting the newer fact must not bring a contradicted one back.
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_confirmed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemoryAuditRecord(Base):
    """Who forgot which customer, when, and how much was deleted; never the deleted content."""

    __tablename__ = "memory_audit_log"
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    action: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the company's customer id: proves which customer was forgotten to whoever knows the id,
    # without keeping the identifier itself.
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor_name: Mapped[str | None] = mapped_column(String(100))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- semantic cache (issue 6) --------------------------------------------------------------------------

class SemanticCacheEntry(Base):
    """A question and the answer given to it, reachable only from the same company, agent and versions.

    Generated entries carry the agent's config and knowledge versions of the turn that produced them;
    warmed ones carry the config version and knowledge_version 0, so they survive a knowledge change.
    """

    __tablename__ = "semantic_cache_entries"
    __table_args__ = (
        UniqueConstraint("agent_id", "origin", "config_version", "knowledge_version", "normalized_question",
                         name="uq_semantic_cache_scope_question"),
        Index("ix_semantic_cache_company", "company_id"),
        Index("ix_semantic_cache_scope", "agent_id", "config_version", "knowledge_version", "seq"),
        Index("ix_semantic_cache_customer", "company_id", "customer_id"),
        Index("ix_semantic_cache_embedding_hnsw", "embedding", postgresql_using="hnsw",
              postgresql_ops={"embedding": "vector_cosine_ops"}),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    # Insertion order, so that a worker's in-process index can fetch only what was added since.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(16))  # generated | warmed
    config_version: Mapped[int] = mapped_column(Integer)
    knowledge_version: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    normalized_question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(384))
    # The customer whose turn produced a generated entry (right to be forgotten); None when warmed.
    customer_id: Mapped[str | None] = mapped_column(String(200))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reply_message_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    hit_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_hit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- knowledge (issue 4) -------------------------------------------------------------------------------

class KnowledgeDocument(TimestampMixin, Base):
    """One file, one URL or an agent's structured documents inside a knowledge source. Ingesting the
    same name (file name or URL) into the same source replaces this document's chunks only."""

    __tablename__ = "knowledge_documents"
    __table_args__ = (
        # md5: a URL may be longer than a btree entry allows.
        Index("ux_knowledge_documents_name", "source_id", "kind", text("md5(name)"), unique=True),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # file | url | documents
    name: Mapped[str] = mapped_column(Text)
    # The hash and model of the content behind the live chunks (None: unknown, e.g. indexed before documents).
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    embedding_model: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | processing | ready | failed
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    # What a retry re-runs from: the file's recorded path, the URL, the agent (never returned by the API).
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class KnowledgeChunkSet(Base):
    """One complete embedding of a document's chunks with one model. Readers follow each document's
    single `active` set; an ingestion or re-embed builds a new set and swaps it in with one commit."""

    __tablename__ = "knowledge_chunk_sets"
    __table_args__ = (
        Index("ux_knowledge_chunk_sets_active", "document_id", unique=True,
              postgresql_where=text("status = 'active'")),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = _company_fk()
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
                                                   index=True)
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
    # What recovery scans for: unfinished jobs by how long ago their worker last touched them.
    __table_args__ = (
        Index("ix_knowledge_jobs_unfinished", "updated_at", postgresql_where=text("status IN ('queued', 'running')")),
    )
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
    # Runs counted against the job's limit (a resumed run counts, one a shutdown handed back does not) and
    # the worker holding the job's lease (cortex.knowledge.jobs).
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    lease_owner: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Touched by the running worker's heartbeat: a stale unfinished job has lost its worker.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    """A request's `Idempotency-Key`: claimed before the turn runs, then the response it got, for 24 h."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("company_id", "key"),
                      Index("ix_idempotency_keys_company_created", "company_id", "created_at"))
    id: Mapped[uuid.UUID] = _uuid_pk()
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the path and the request body: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

"""The shapes of Cortex's answers, as typed dictionaries (the JSON as it comes, with its fields named).

`total=False`: a newer server may add fields and an older one may lack the newest ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar, cast

T = TypeVar("T")


class Page(TypedDict, Generic[T], total=False):
    items: list[T]
    total_count: int
    page: int
    page_size: int
    total_pages: int
    has_more: bool


class Tokens(TypedDict, total=False):
    input: int
    output: int


class ChatResponse(TypedDict, total=False):
    reply: str
    model_used: str
    cached: bool
    actions_executed: list[Any]
    latency_ms: float
    tokens: Tokens
    context_tokens: dict[str, int]
    step_timings: dict[str, float]
    citations: list[dict[str, Any]]
    message_id: str | None


@dataclass(frozen=True)
class ChatEvent:
    """One event of a streamed chat turn: `step`, `delta` (reply text), `tool`, then `done`.

    `data` is the event's JSON without its `event` name; `id` is its number in the stream.
    """

    event: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def text(self) -> str:
        """A delta's reply text ("" for the other events)."""
        return str(self.data.get("text", "")) if self.event == "delta" else ""

    @property
    def response(self) -> ChatResponse | None:
        """The `done` event's body: the whole response, as `chat()` returns it, plus `message_id`."""
        return cast(ChatResponse, dict(self.data)) if self.event == "done" else None


class Agent(TypedDict, total=False):
    id: str
    company_id: str
    name: str
    slug: str | None
    system_prompt: str
    personality: dict[str, Any]
    dialect: dict[str, Any]
    faqs: list[dict[str, Any]]
    scenarios: list[dict[str, Any]]
    workflow_faqs: list[dict[str, Any]]
    settings: dict[str, Any]
    action_ids: list[str]
    knowledge_source_ids: list[str]
    config_version: int
    knowledge_version: int
    created_at: str
    updated_at: str


class Action(TypedDict, total=False):
    id: str
    company_id: str
    name: str
    description: str
    webhook_url: str
    method: str
    parameters_schema: dict[str, Any]
    run_after_reply: bool
    created_at: str
    updated_at: str


class KnowledgeSource(TypedDict, total=False):
    id: str
    company_id: str
    name: str
    description: str
    source_type: str
    embedding_model: str
    status: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class KnowledgeDocument(TypedDict, total=False):
    id: str
    source_id: str
    kind: str
    name: str
    content_sha256: str | None
    embedding_model: str | None
    status: str
    error: str | None
    chunk_count: int
    created_at: str
    updated_at: str


class IngestResult(TypedDict, total=False):
    """A finished ingestion (200) or, with `async`, an accepted job (202: `job_id`, `kind`)."""

    source_id: str
    status: str
    chunks_created: int
    chunks_embedded: int
    error: str | None
    document_id: str | None
    job_id: str
    kind: str
    agent_id: str | None


class Job(TypedDict, total=False):
    job_id: str
    kind: str
    status: str
    progress: int
    source_id: str | None
    agent_id: str | None
    document_id: str | None
    documents_processed: int
    chunks_created: int
    chunks_embedded: int
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


class SearchHit(TypedDict, total=False):
    chunk_id: str
    source_id: str
    document_id: str | None
    document_name: str | None
    text: str
    heading_path: str
    score: float


class SearchResults(TypedDict, total=False):
    results: list[SearchHit]
    warnings: list[str]


class Customer(TypedDict, total=False):
    id: str
    company_id: str
    customer_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    organization: str | None
    metadata: dict[str, Any]
    segments: list[str]
    created_at: str
    updated_at: str


class Fact(TypedDict, total=False):
    id: str
    customer_id: str
    fact: str
    category: str
    subject: str | None
    value: str | None
    confidence: float
    source: str
    created_at: str
    updated_at: str


class CustomerMemory(TypedDict, total=False):
    customer_id: str
    company_id: str
    fact_count: int
    knowledge_doc_count: int
    kb_entry_count: int
    facts: list[dict[str, Any]]
    knowledge_snippets: list[dict[str, Any]]
    kb_entries: list[dict[str, Any]]


class Conversation(TypedDict, total=False):
    id: str
    agent_id: str
    customer_id: str
    channel: str
    created_at: str
    updated_at: str


class Message(TypedDict, total=False):
    id: str
    conversation_id: str
    role: str
    content: str
    status: str
    channel: str | None
    request_id: str | None
    model_used: str | None
    tier: str | None
    tier_reason: str | None
    tokens_input: int
    tokens_output: int
    cost_usd: float
    latency_ms: float | None
    step_timings: dict[str, float]
    context_tokens: dict[str, int]
    actions_executed: list[Any]
    tool_calls: list[Any]
    cached: bool
    error: str | None
    created_at: str


class ApiKey(TypedDict, total=False):
    id: str
    key: str  # only in the answer to creating it
    key_prefix: str
    name: str
    scopes: list[str]
    expires_at: str | None
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    rate_limit_per_minute: int | None


class Webhook(TypedDict, total=False):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: str | None
    created_at: str
    updated_at: str
    secret: str  # only in the answers to creating it and rotating its secret


class Delivery(TypedDict, total=False):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_status_code: int | None
    created_at: str
    attempts: list[dict[str, Any]]


class Event(TypedDict, total=False):
    id: str
    type: str
    company_id: str
    created_at: str
    data: dict[str, Any]


class CacheStats(TypedDict, total=False):
    status: str
    index_name: str
    num_docs: int
    num_records: int
    indexing: bool
    hits: int
    misses: int
    hit_rate: float
    by_agent: list[dict[str, Any]]
    hot_index: dict[str, Any] | None

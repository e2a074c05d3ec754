"""What the OpenAPI document says about each operation that its route cannot: a summary, a description, the
error statuses particular to it (those every route of its kind answers are derived in `contract`), and an
example request. Keyed by (method, path template); a route without an entry fails the schema build."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPANY = "3f2c9a4e-1b7d-4c8e-9a6f-2d5e8b1c0a47"
AGENT = "8a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CONVERSATION = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
SOURCE = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str
    # Statuses this operation answers beyond those derived from its kind (auth, body, path, method).
    errors: frozenset[int] = frozenset()
    # Derived statuses it never answers.
    never: frozenset[int] = frozenset()
    # The key scope, for routes that check it themselves rather than through `ApiKeyAuth`.
    scope: str | None = None
    auth_note: str = ""
    example: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _op(summary: str, description: str, *errors: int, **kwargs: Any) -> Operation:
    return Operation(summary, description, frozenset(errors), **kwargs)


_LIST = " Paged, sorted and filtered like every list (see the `sort`, `created_after` and `updated_after` parameters)."
_METRICS_TOKEN = "Also opened by `Authorization: Bearer $CORTEX_METRICS_TOKEN` when that is set (for a scraper)."
_INGEST = (" With `async: true` (or a large input) it answers 202 with a job to poll at `GET /v1/jobs/{job_id}`;"
           " otherwise it waits and answers the outcome, whose `status` says `failed` with the reason on 409, 422,"
           " 502 or 503.")

TAGS: list[dict[str, str]] = [
    {"name": "health", "description": "Liveness and the state of the services Cortex depends on."},
    {"name": "portal", "description": "The portal's JSON API: log in, manage the company's API keys."},
    {"name": "keys", "description": "API keys, within the powers of the key that asks (scope `keys`)."},
    {"name": "agents", "description": "Agents: prompt, personality, FAQs, scenarios, linked actions and knowledge."},
    {"name": "actions", "description": "Actions: webhooks an agent may call during a conversation (scope `agents`)."},
    {"name": "knowledge", "description": "Knowledge sources, their documents, ingestion, search and jobs."},
    {"name": "customers", "description": "The company's customer profiles (scope `memory`)."},
    {"name": "chat", "description": "One customer message in, the agent's reply out."},
    {"name": "openai-compatible", "description": "The OpenAI-compatible API over the same pipeline (scope `chat`)."},
    {"name": "conversations", "description": "Stored conversations and messages (scope `chat`)."},
    {"name": "metrics", "description": "Prometheus metrics and the usage dashboard (scope `metrics`)."},
    {"name": "memory", "description": "What Cortex remembers about each customer (scope `memory`)."},
    {"name": "cache", "description": "The semantic cache of answered questions (scope `cache`)."},
    {"name": "events", "description": "The company's event feed, as a list and as a live stream (scope `events`)."},
    {"name": "webhooks", "description": "Outgoing webhooks: endpoints, deliveries, redelivery (scope `webhooks`)."},
]

OPERATIONS: dict[tuple[str, str], Operation] = {
    # --- health ------------------------------------------------------------------------------------------
    ("GET", "/health"): _op(
        "Liveness", "Answers `{\"status\": \"ok\", \"version\": ...}` without touching any dependency."),
    ("GET", "/health/detailed"): _op(
        "Dependency health",
        "The state of PostgreSQL, Redis, the LLM endpoint and memory extraction, each `ok`, `not configured` or "
        "`error: <reason>`; `status` is `degraded` when a configured one fails.",
        401, 403, scope="metrics", auth_note=_METRICS_TOKEN),
    # --- portal ------------------------------------------------------------------------------------------
    ("POST", "/portal/api/login"): _op(
        "Log in", "Email and password in, a portal session token (JWT) and the user out.", 401,
        example={"email": "owner@example.com", "password": "correct horse battery staple"}),
    ("POST", "/portal/api/logout"): _op("Log out", "Ends the session the token belongs to, on every worker."),
    ("POST", "/portal/api/keys"): _op(
        "Create an API key (portal)",
        "Makes a key for the user's company. The raw `ctx_...` key is in this response only; Cortex keeps its "
        "SHA-256.", example={"name": "backend", "scopes": ["chat", "memory"], "expires_in_days": 90}),
    ("GET", "/portal/api/keys"): _op(
        "List API keys (portal)", "The company's live (unrevoked) keys, without secrets." + _LIST),
    ("DELETE", "/portal/api/keys/{key_id}"): _op(
        "Revoke an API key (portal)", "Revokes the key at once, on every worker."),
    # --- keys --------------------------------------------------------------------------------------------
    ("POST", "/v1/keys"): _op(
        "Create an API key",
        "Makes a key within the powers of the calling key: only scopes it holds, a rate limit not above its own "
        "and an expiry not after its own (else 403). The raw key is in this response only.",
        example={"name": "reporting", "scopes": ["chat"], "expires_in_days": 30}),
    ("GET", "/v1/keys"): _op("List API keys", "The company's live (unrevoked) keys, without secrets." + _LIST),
    ("DELETE", "/v1/keys/{key_id}"): _op(
        "Revoke an API key", "Revokes a key the calling key could have made (else 403), at once on every worker.", 403),
    # --- agents ------------------------------------------------------------------------------------------
    ("POST", "/v1/agents"): _op(
        "Create an agent",
        "An agent: system prompt (a template), personality, dialect, FAQs, scenarios, and the actions and knowledge "
        "sources it may use. A `slug` is unique in the company (409) and names the agent as an OpenAI `model`.",
        409, example={"name": "Support", "slug": "support", "system_prompt": "You answer for Acme's store.",
                      "faqs": [{"question": "What are your opening hours?", "answer": "9 to 5, Sunday to Thursday."}]}),
    ("GET", "/v1/agents"): _op("List agents", "The company's agents." + _LIST),
    ("GET", "/v1/agents/{agent_id}"): _op("Get an agent", "One agent, with its linked action and source ids."),
    ("PATCH", "/v1/agents/{agent_id}"): _op(
        "Update an agent", "Changes the fields given (`slug: null` removes the slug); the agent's cached "
        "configuration and semantic cache answers are invalidated at once.", example={"system_prompt": "Be brief."}),
    ("DELETE", "/v1/agents/{agent_id}"): _op("Delete an agent", "Deletes the agent and its conversations."),
    ("GET", "/v1/agents/{agent_id}/config"): _op(
        "Get an agent's compiled configuration", "What the pipeline runs with, served from the config cache."),
    # --- actions -----------------------------------------------------------------------------------------
    ("POST", "/v1/actions"): _op(
        "Create an action",
        "A webhook the model may call as a tool. Its URL is checked against private and reserved addresses; "
        "credentials are write-only and stored encrypted. Names are unique in the company (409).",
        409, example={"name": "lookup_order", "description": "Look up an order by its id",
                      "webhook_url": "https://shop.example.com/orders", "method": "POST",
                      "parameters_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}}),
    ("GET", "/v1/actions"): _op("List actions", "The company's actions, without credentials." + _LIST),
    ("GET", "/v1/actions/{action_id}"): _op("Get an action", "One action, without its credentials."),
    ("PATCH", "/v1/actions/{action_id}"): _op(
        "Update an action", "Changes the fields given; linked agents see it at once."),
    ("DELETE", "/v1/actions/{action_id}"): _op("Delete an action", "Deletes the action and unlinks it from agents."),
    # --- knowledge ---------------------------------------------------------------------------------------
    ("POST", "/v1/knowledge/sources"): _op(
        "Create a knowledge source", "A named collection of documents, embedded with one model.",
        example={"name": "Help centre", "description": "Public help articles", "embedding_model": "minilm"}),
    ("GET", "/v1/knowledge/sources"): _op("List knowledge sources", "The company's sources; `status` filters." + _LIST),
    ("GET", "/v1/knowledge/sources/{source_id}"): _op("Get a knowledge source", "One source."),
    ("PATCH", "/v1/knowledge/sources/{source_id}"): _op(
        "Update a knowledge source", "Changes its name or description."),
    ("DELETE", "/v1/knowledge/sources/{source_id}"): _op(
        "Delete a knowledge source",
        "Deletes the source with its documents and chunks; agents stop seeing it at once."),
    ("GET", "/v1/knowledge/sources/{source_id}/documents"): _op(
        "List a source's documents", "Its documents (oldest first by default); `status` filters." + _LIST),
    ("POST", "/v1/knowledge/sources/{source_id}/files"): _op(
        "Upload a file", "A multipart upload (PDF, DOCX, HTML, Markdown, text, ...) converted, chunked and embedded "
        "into the source; the same file name replaces that document only." + _INGEST),
    ("POST", "/v1/knowledge/ingest/file"): _op(
        "Ingest a file from the upload folder",
        "A file already in the company's upload folder (`CORTEX_UPLOAD_DIR/<company_id>/`)." + _INGEST, 404,
        example={"source_id": SOURCE, "file_path": "help/returns.md", "user_id": "ops"}),
    ("POST", "/v1/knowledge/ingest/url"): _op(
        "Ingest a web page", "Fetches the page (size, time and address limits on every redirect) and keeps its main "
        "content." + _INGEST, 404, example={"source_id": SOURCE, "url": "https://shop.example.com/returns",
        "user_id": "ops"}),
    ("POST", "/v1/knowledge/ingest/documents"): _op(
        "Ingest an agent's FAQs and scenarios", "Indexes the agent's structured documents for retrieval." + _INGEST,
        404,
        example={"company_id": COMPANY, "agent_id": AGENT, "user_id": "ops"}),
    ("POST", "/v1/knowledge/reembed"): _op(
        "Re-embed a source", "Embeds every document again (optionally with another model) and swaps the new chunks "
        "in at once." + _INGEST, 404),
    ("POST", "/v1/knowledge/search"): _op(
        "Search knowledge",
        "What the Context Engine hands the prompt for this query: the agent's sources searched hybrid, dense or "
        "lexical.", 404, 502, 503, example={"agent_id": AGENT, "query": "How long does delivery take?", "top_k": 5}),
    ("GET", "/v1/knowledge/documents/{document_id}"): _op("Get a document", "One document with its status and counts."),
    ("DELETE", "/v1/knowledge/documents/{document_id}"): _op(
        "Delete a document", "Removes that document's chunks only."),
    ("POST", "/v1/knowledge/documents/{document_id}/retry"): _op(
        "Retry a failed document", "Runs a `failed` document's ingestion again from what it recorded (409 when it "
        "has not failed or its file is gone)." + _INGEST),
    ("GET", "/v1/jobs"): _op(
        "List jobs", "Background ingestion jobs; `status`, `source_id` and `agent_id` filter." + _LIST),
    ("GET", "/v1/jobs/{job_id}"): _op("Get a job", "A background job's status, progress (0-100), counts and error."),
    # --- customers ---------------------------------------------------------------------------------------
    ("POST", "/v1/customers"): _op(
        "Create a customer", "A profile under the company's own `customer_id` (409 when it exists).", 409,
        example={"customer_id": "cust-1042", "first_name": "Dana", "email": "dana@example.com",
                 "segments": ["vip"]}),
    ("GET", "/v1/customers"): _op("List customers", "The company's customer profiles." + _LIST),
    ("GET", "/v1/customers/{ref}"): _op("Get a customer", "`ref` is Cortex's id or the company's `customer_id`."),
    ("PATCH", "/v1/customers/{ref}"): _op(
        "Update a customer", "Changes the fields given.", example={"last_name": "Levi"}),
    ("DELETE", "/v1/customers/{ref}"): _op("Delete a customer", "Deletes the profile (memory is forgotten apart)."),
    ("GET", "/v1/customers/{ref}/facts"): _op(
        "List a customer's memory facts",
        "The facts Cortex keeps about the customer, as a plain list for sync and export (`POST /v1/memory/{id}` "
        "ranks them for a query instead). `ref` is a profile's id or `customer_id`, or a `customer_id` with facts "
        "but no profile. Superseded facts only with `include_superseded=true`." + _LIST),
    # --- chat --------------------------------------------------------------------------------------------
    ("POST", "/v1/chat"): _op(
        "Send a customer message",
        "Runs the pipeline (config, semantic cache, memory, knowledge, model routing, the model with tools, post "
        "actions) and answers the reply with its cost, tokens and step timings; with `stream: true`, server-sent "
        "events. An `Idempotency-Key` header makes a retry the same turn (409 while the first still runs, 422 "
        "when reused with another body).",
        400, 404, 409, 503, 504,
        example={"company_id": COMPANY, "agent_id": AGENT, "conversation_id": CONVERSATION,
                 "customer_id": "cust-1042", "message": "Where is my order?", "channel": "web"}),
    # --- openai ------------------------------------------------------------------------------------------
    ("POST", "/v1/chat/completions"): _op(
        "Create a chat completion (OpenAI-compatible)",
        "OpenAI's request and response shapes over Cortex's pipeline: `model` names one of the company's agents "
        "by slug or id; `user` (or `metadata.customer_id`) names the customer. Errors take OpenAI's shape.",
        400, 404, 409, 503, 504,
        example={"model": "support", "user": "cust-1042",
                 "messages": [{"role": "user", "content": "Where is my order?"}]}),
    ("GET", "/v1/models"): _op("List models (OpenAI-compatible)", "The company's agents, each as a model."),
    ("GET", "/v1/models/{model}"): _op("Get a model (OpenAI-compatible)", "One agent by slug or id, as a model."),
    # --- conversations -----------------------------------------------------------------------------------
    ("GET", "/v1/conversations"): _op(
        "List conversations", "The company's conversations, most recently active first by default; `customer_id`, "
        "`agent_id` and `channel` filter." + _LIST),
    ("GET", "/v1/conversations/{conversation_id}/messages"): _op(
        "List a conversation's messages",
        "Every stored message of one conversation, in the order spoken by default, with model, tier, tokens, cost "
        "and timings." + _LIST),
    ("GET", "/v1/messages"): _op(
        "List messages across the company",
        "Messages of every conversation; `conversation_id`, `agent_id`, `customer_id`, `channel`, `status` and "
        "`role` filter. A message changes after it is written (its status settles, post-reply tool calls join "
        "it), so `updated_after` is what an incremental sync asks for." + _LIST),
    # --- metrics -----------------------------------------------------------------------------------------
    ("GET", "/v1/metrics"): _op(
        "Prometheus metrics", "The process's metrics in Prometheus text format.", 401, 403, scope="metrics",
        auth_note=_METRICS_TOKEN),
    ("GET", "/v1/metrics/dashboard"): _op(
        "Usage dashboard", "Requests, cost, latency, cache hit rate and tier mix over the last `days`, optionally "
        "for one agent.", 404),
    # --- memory ------------------------------------------------------------------------------------------
    ("DELETE", "/v1/memory/fact/{fact_id}"): _op("Delete a fact", "Deletes one stored fact."),
    ("POST", "/v1/memory/{customer_id}"): _op(
        "Read a customer's memory",
        "The customer's facts (ranked for `query` as recall would rank them, else by recency and confidence), "
        "knowledge documents and their entries.", 503, example={"company_id": COMPANY, "query": "delivery address"}),
    ("POST", "/v1/memory/{customer_id}/save"): _op(
        "Save a fact", "Stores a fact about the customer; with a `subject`, a new value supersedes the stored one.",
        example={"company_id": COMPANY, "fact": "Prefers email over phone calls.", "category": "preference"}),
    ("DELETE", "/v1/memory/{customer_id}"): _op(
        "Forget a customer",
        "Deletes what Cortex keeps about the customer (facts, superseded ones too, messages, conversations, cached "
        "answers and their events) and records who asked, without the content."),
    # --- cache -------------------------------------------------------------------------------------------
    ("POST", "/v1/cache/warm"): _op(
        "Warm the semantic cache", "Stores question/answer pairs for an agent; they survive knowledge changes.", 404,
        503,
        example={"company_id": COMPANY, "agent_id": AGENT,
                 "pairs": [{"question": "What are your opening hours?", "answer": "9 to 5, Sunday to Thursday."}]}),
    ("DELETE", "/v1/cache/flush"): _op(
        "Flush the semantic cache", "Deletes the company's (or one agent's) entries.", 503, 404),
    ("GET", "/v1/cache/stats"): _op("Semantic cache statistics", "Entries, hits, misses and hit rate.", 503),
    # --- events ------------------------------------------------------------------------------------------
    ("GET", "/v1/events"): _op(
        "List events", "The company's events, oldest first by default; `type` filters, `after` continues after an "
        "event (404 when unknown)." + _LIST, 404),
    ("POST", "/v1/events/stream-token"): _op(
        "Get a stream token", "A short-lived token for `GET /v1/events/stream?token=` and `/v1/ws`, for clients "
        "that cannot send headers (EventSource, browser WebSockets)."),
    ("GET", "/v1/events/stream"): _op(
        "Stream events (SSE)", "The company's events as they happen, as server-sent events; resumes after "
        "`Last-Event-ID` (or `after`) with what was missed.", 404, 401, 403, scope="events",
        auth_note="Or `?token=` from `POST /v1/events/stream-token`."),
    # --- webhooks ----------------------------------------------------------------------------------------
    ("POST", "/v1/webhooks"): _op(
        "Create a webhook endpoint", "Subscribes a URL to event types (or `*`). The signing secret is in this "
        "response only; deliveries are signed the Standard Webhooks way.",
        example={"url": "https://hooks.example.com/cortex", "event_types": ["message.received", "reply.sent"],
                 "description": "CRM sync"}),
    ("GET", "/v1/webhooks"): _op("List webhook endpoints", "The company's endpoints, without secrets." + _LIST),
    ("GET", "/v1/webhooks/{webhook_id}"): _op("Get a webhook endpoint", "One endpoint, without its secret."),
    ("PATCH", "/v1/webhooks/{webhook_id}"): _op("Update a webhook endpoint", "Changes the fields given; enabling "
                                                 "it again clears its failure state.", example={"enabled": True}),
    ("DELETE", "/v1/webhooks/{webhook_id}"): _op("Delete a webhook endpoint", "Deletes it; pending deliveries stop."),
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): _op(
        "Rotate the signing secret", "A new secret (in this response only); the old one keeps signing beside it "
        "until `previous_secret_expires_at` (`CORTEX_WEBHOOK_SECRET_OVERLAP_SECONDS`)."),
    ("POST", "/v1/webhooks/{webhook_id}/test"): _op(
        "Send a test event", "Queues a `webhook.test` delivery to the endpoint (409 when it is disabled).", 409),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): _op(
        "List deliveries", "The endpoint's deliveries with their attempts; `status` filters." + _LIST),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): _op(
        "Redeliver", "Sends the delivery again from the start of the retry schedule (409 while it is still being "
        "attempted).", 409),
}

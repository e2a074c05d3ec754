"""Memory API schemas, with the paths' field names exactly as the API documents them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["preference", "history", "sentiment", "context", "general"]
CATEGORIES: tuple[str, ...] = ("preference", "history", "sentiment", "context", "general")
FactText = Annotated[str, Field(min_length=1, max_length=2_000)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]


class MemoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: uuid.UUID
    query: Annotated[str, Field(min_length=1, max_length=10_000)] | None = None


class FactPublic(BaseModel):
    id: uuid.UUID
    fact: str
    category: str
    confidence: float


class FactListed(BaseModel):
    """One stored fact as `GET /v1/customers/{ref}/facts` lists it, with what a sync needs."""

    id: uuid.UUID
    customer_id: str
    agent_id: uuid.UUID | None
    fact: str
    category: str
    confidence: float
    subject: str | None
    value: str | None
    source: str
    created_at: datetime
    updated_at: datetime
    last_confirmed_at: datetime
    # Set when a newer fact about the same subject replaced it (listed only with include_superseded=true).
    superseded_by: uuid.UUID | None
    superseded_at: datetime | None


class KnowledgeSnippet(BaseModel):
    source_id: uuid.UUID
    name: str
    description: str
    source_type: str
    status: str


class KbEntry(BaseModel):
    """One indexed entry (chunk) of a customer's knowledge document; `score` is its relevance to the
    query, null without one."""

    chunk_id: uuid.UUID
    source_id: uuid.UUID
    document_ref: str
    heading_path: list[str]
    text: str
    score: float | None


class MemoryPublic(BaseModel):
    customer_id: str
    company_id: uuid.UUID
    fact_count: int
    knowledge_doc_count: int
    kb_entry_count: int
    facts: list[FactPublic]
    knowledge_snippets: list[KnowledgeSnippet]
    kb_entries: list[KbEntry]


class FactSave(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: uuid.UUID
    fact: FactText
    category: Category = "general"
    confidence: Confidence = 1.0
    source: Annotated[str, Field(min_length=1, max_length=64)] = "manual"
    agent_id: uuid.UUID | None = None
    # Optional: the attribute the fact sets (home_address, preferred_language). With it, a saved fact
    # supersedes the customer's stored fact of the same subject when the value differs, as extracted
    # facts do; without it, a manual save only ever adds or confirms.
    subject: Annotated[str, Field(min_length=1, max_length=120, pattern=r".*\w.*")] | None = None
    value: Annotated[str, Field(min_length=1, max_length=2_000)] | None = None


class FactSaved(BaseModel):
    customer_id: str
    fact_id: uuid.UUID
    saved: bool


class FactDeleted(BaseModel):
    fact_id: uuid.UUID
    deleted: bool


class CustomerForgotten(BaseModel):
    customer_id: str
    company_id: uuid.UUID
    facts_deleted: int
    messages_deleted: int
    conversations_deleted: int
    cache_entries_deleted: int
    audit_id: uuid.UUID


# --- what the extraction model must answer (strict JSON schema) ---------------------------------------

class ExtractedFact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fact: FactText
    category: Category
    confidence: Confidence
    subject: Annotated[str, Field(max_length=120)]
    value: Annotated[str, Field(max_length=2_000)]


class ExtractionOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facts: Annotated[list[ExtractedFact], Field(max_length=20)]


EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["facts"],
    "properties": {
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["fact", "category", "confidence", "subject", "value"],
                "properties": {
                    "fact": {"type": "string", "description": "one durable fact about the customer, "
                             "as a short third-person sentence"},
                    "category": {"type": "string", "enum": list(CATEGORIES)},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "subject": {"type": "string", "description": "snake_case key of the single-valued "
                                "attribute the fact sets, e.g. home_address, phone_number, preferred_language"},
                    "value": {"type": "string", "description": "the attribute's value as stated"},
                },
            },
        },
    },
}

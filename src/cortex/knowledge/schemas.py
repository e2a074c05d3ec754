from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from cortex.kit.json_bounds import Metadata

SourceType = Literal["file", "url", "text", "documents"]
DocumentKind = Literal["file", "url", "documents"]
DocumentStatus = Literal["queued", "processing", "ready", "failed"]
EmbeddingModelName = Literal["minilm", "bge-m3", "openai", "cohere"]


class KnowledgeSourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5_000)] = ""
    source_type: SourceType = "file"
    embedding_model: EmbeddingModelName = "minilm"
    metadata: Metadata = {}


class KnowledgeSourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=5_000)] | None = None
    metadata: Metadata | None = None


class KnowledgeSourcePublic(BaseModel):
    id: uuid.UUID
    company_id: uuid.UUID
    name: str
    description: str
    source_type: str
    embedding_model: str
    status: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


# --- ingestion, search and jobs ---------------------------------------------------------------------

UserId = Annotated[str, Field(min_length=1, max_length=200)]
SearchModeName = Literal["hybrid", "dense", "lexical"]


class _IngestBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    embedding_model: EmbeddingModelName | None = None
    # `"async": true` runs the ingestion as a background job (202 + job id).
    run_async: bool | None = Field(default=None, alias="async")


class IngestFileRequest(_IngestBase):
    source_id: uuid.UUID
    file_path: Annotated[str, Field(min_length=1, max_length=4_096)]
    user_id: UserId


class IngestUrlRequest(_IngestBase):
    source_id: uuid.UUID
    url: HttpUrl
    user_id: UserId


class IngestDocumentsRequest(_IngestBase):
    agent_id: uuid.UUID
    company_id: uuid.UUID
    user_id: UserId


class ReembedRequest(_IngestBase):
    source_id: uuid.UUID


# "unchanged": the document already holds this content, embedded with this model; nothing was re-embedded.
IngestStatus = Literal["completed", "failed", "unchanged"]


class IngestResult(BaseModel):
    source_id: uuid.UUID
    status: IngestStatus
    chunks_created: int
    chunks_embedded: int
    error: str | None
    document_id: uuid.UUID | None = Field(None, description="The document this ingestion added or replaced.")


class DocumentsIngestResult(BaseModel):
    agent_id: uuid.UUID
    status: IngestStatus
    documents_processed: int
    chunks_created: int
    chunks_embedded: int
    error: str | None = None
    document_id: uuid.UUID | None = Field(None, description="The document holding the agent's FAQs and scenarios.")


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run_async: bool | None = Field(default=None, alias="async")


class KnowledgeDocumentPublic(BaseModel):
    id: uuid.UUID
    source_id: uuid.UUID
    kind: DocumentKind
    name: str = Field(description="The file name, or the URL.")
    content_sha256: str | None = Field(description="SHA-256 of the content behind the live chunks.")
    embedding_model: str | None
    status: DocumentStatus
    error: str | None
    chunk_count: int = Field(description="Live (searchable) chunks.")
    created_at: datetime
    updated_at: datetime


class ReembedResult(BaseModel):
    source_id: uuid.UUID
    status: Literal["completed", "failed"]
    chunks_embedded: int
    error: str | None


class JobAccepted(BaseModel):
    job_id: uuid.UUID
    status: str
    kind: str
    source_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    document_id: uuid.UUID | None = None


JobStatus = Literal["queued", "running", "completed", "failed"]
SourceStatus = Literal["empty", "ingesting", "ready", "failed"]


class JobPublic(BaseModel):
    job_id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "completed", "failed"]
    progress: int
    source_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    documents_processed: int
    chunks_created: int
    chunks_embedded: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    document_id: uuid.UUID | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: uuid.UUID
    query: Annotated[str, Field(min_length=1, max_length=10_000)]
    top_k: Annotated[int, Field(ge=1, le=50)] = 5
    mode: SearchModeName = "hybrid"


class SearchHit(BaseModel):
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    text: str
    heading_path: list[str]
    score: float
    document_id: uuid.UUID | None = Field(None, description="The document the chunk comes from.")
    document_name: str | None = Field(None, description="Its file name or URL, to cite.")


class SearchResults(BaseModel):
    results: list[SearchHit]
    # What degraded this search, e.g. "dense retrieval unavailable: embedding model openai is unreachable;
    # full-text results only". Empty when every part of the search ran.
    warnings: list[str] = []

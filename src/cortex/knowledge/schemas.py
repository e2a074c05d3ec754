from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SourceType = Literal["file", "url", "text", "documents"]
EmbeddingModelName = Literal["minilm", "bge-m3", "openai", "cohere"]


class KnowledgeSourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5_000)] = ""
    source_type: SourceType = "file"
    embedding_model: EmbeddingModelName = "minilm"
    metadata: dict[str, Any] = {}


class KnowledgeSourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=5_000)] | None = None
    metadata: dict[str, Any] | None = None


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

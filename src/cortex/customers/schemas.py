from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from cortex.kit.json_bounds import Metadata

Name = Annotated[str, Field(max_length=200)]
Segments = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: Annotated[str, Field(min_length=1, max_length=200)]
    first_name: Name | None = None
    last_name: Name | None = None
    email: EmailStr | None = None
    organization: Name | None = None
    metadata: Metadata = {}
    segments: Segments = []


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_name: Name | None = None
    last_name: Name | None = None
    email: EmailStr | None = None
    organization: Name | None = None
    metadata: Metadata | None = None
    segments: Segments | None = None


class CustomerPublic(BaseModel):
    id: uuid.UUID
    company_id: uuid.UUID
    customer_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    organization: str | None
    metadata: dict[str, Any]
    segments: list[str]
    created_at: datetime
    updated_at: datetime

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cortex.auth.api_keys import SCOPES

Scope = Annotated[str, Field(pattern="^(" + "|".join(s.replace("*", r"\*") for s in SCOPES) + ")$")]


class LoginRequest(BaseModel):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class PortalUserPublic(BaseModel):
    id: uuid.UUID
    email: str
    company_id: uuid.UUID


class LoginResponse(BaseModel):
    token: str
    user: PortalUserPublic


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES))] = ["*"]
    expires_in_days: Annotated[int | None, Field(ge=1, le=365)] = None
    rate_limit_per_minute: Annotated[int | None, Field(ge=1, le=1_000_000)] = None

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @field_validator("scopes")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ApiKeyCreated(BaseModel):
    """The only response that ever carries the raw key."""

    id: uuid.UUID
    key: str
    key_prefix: str
    name: str
    scopes: list[str]
    expires_at: datetime | None
    created_at: datetime
    rate_limit_per_minute: int | None = None


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    key_prefix: str
    name: str
    scopes: list[str]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit_per_minute: int | None


class ApiKeyRevoked(BaseModel):
    id: uuid.UUID
    revoked: bool

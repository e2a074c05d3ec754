"""The events and webhooks API's shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cortex.events.outbox import EVENT_TYPES

SUBSCRIBABLE = (*EVENT_TYPES, "*")


class EventPublic(BaseModel):
    id: uuid.UUID
    type: str
    company_id: uuid.UUID
    created_at: datetime
    # An event never changes: its last change is its creation (for tools that sync on `updated_at`).
    updated_at: datetime
    data: dict[str, Any]


class StreamToken(BaseModel):
    token: str
    expires_at: datetime


def _check_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(SUBSCRIBABLE))
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}; known: {', '.join(SUBSCRIBABLE)}")
    return list(dict.fromkeys(types))


WebhookUrl = Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^https?://")]
EventTypes = Annotated[list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=len(SUBSCRIBABLE))]
Description = Annotated[str, Field(max_length=500)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: WebhookUrl
    event_types: EventTypes = ["*"]
    description: Description = ""
    enabled: bool = True

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _check_types(value)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_types(value)


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    """The only answers that carry the signing secret: creation and rotation."""

    secret: str


class SecretRotated(BaseModel):
    id: uuid.UUID
    secret: str
    previous_secret_expires_at: datetime


class AttemptPublic(BaseModel):
    attempted_at: datetime
    status_code: int | None
    duration_ms: float
    response_excerpt: str | None
    error: str | None
    next_attempt_at: datetime | None


DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class DeliveryPublic(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptPublic]

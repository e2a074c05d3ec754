"""Conversation history as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ConversationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_id: uuid.UUID
    customer_id: str
    channel: str
    created_at: datetime
    updated_at: datetime


MessageRole = Literal["customer", "assistant"]
MessageStatus = Literal["ok", "pending", "failed"]


class MessagePublic(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    agent_id: uuid.UUID | None
    customer_id: str | None
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
    step_timings: dict[str, Any]
    context_tokens: dict[str, Any]
    actions_executed: list[Any]
    tool_calls: list[Any]
    cached: bool
    error: str | None
    created_at: datetime
    updated_at: datetime

"""The `POST /v1/chat` contract: request and response exactly as customers integrate against it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cortex.kit.json_bounds import Metadata

Channel = Literal["whatsapp", "web", "instagram", "email", "messenger", "telegram", "sms", "voice"]

STEP_NAMES = ("config_load", "memory_recall", "context_engine", "token_optimizer", "cache_check", "model_router",
              "agent_compiler", "tool_call_rounds", "tool_execution")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company_id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: Annotated[str, Field(min_length=1, max_length=200)]
    message: Annotated[str, Field(min_length=1, max_length=16_000)]
    channel: Channel = "whatsapp"
    metadata: Metadata = {}

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 20:
            raise ValueError("at most 20 keys")
        return value

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Tokens(BaseModel):
    input: int
    output: int
    cost_usd: float


class ContextTokens(BaseModel):
    before_compression: int
    after_compression: int
    savings_pct: float


class StepTimings(BaseModel):
    config_load: float = 0.0
    memory_recall: float = 0.0
    context_engine: float = 0.0
    token_optimizer: float = 0.0
    cache_check: float = 0.0
    model_router: float = 0.0
    agent_compiler: float = 0.0
    tool_call_rounds: float = 0.0
    tool_execution: float = 0.0


class ChatResponse(BaseModel):
    reply: str
    model_used: str
    cached: bool
    actions_executed: list[str]
    latency_ms: float
    tokens: Tokens
    context_tokens: ContextTokens
    step_timings: StepTimings

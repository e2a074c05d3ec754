"""The `POST /v1/chat` contract: request and response exactly as customers integrate against it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cortex.kit.json_bounds import Metadata

Channel = Literal["whatsapp", "web", "instagram", "email", "messenger", "telegram", "sms", "voice"]

# The timed steps, in milliseconds. `tool_followup_calls` is the time of the model calls that followed tool
# results; it is stored with each reply but not part of the response's `step_timings`.
STEP_NAMES = ("config_load", "memory_recall", "context_engine", "token_optimizer", "cache_check", "model_router",
              "agent_compiler", "tool_followup_calls", "tool_execution")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company_id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: Annotated[str, Field(min_length=1, max_length=200)]
    message: Annotated[str, Field(min_length=1, max_length=16_000)]
    channel: Channel = "whatsapp"
    metadata: Metadata = {}
    # Server-sent events instead of one JSON body (see README, "Streaming replies").
    stream: bool = False

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


def _ms(service: str) -> Any:
    return Field(0.0, description=f"milliseconds spent in {service}; 0 when it did not run")


class StepTimings(BaseModel):
    """Where the time went, per pipeline service, in milliseconds; `tool_call_rounds` is a count."""

    config_load: float = _ms("01 Config Loader")
    memory_recall: float = _ms("02 Memory Recall")
    context_engine: float = _ms("03 Context Engine")
    token_optimizer: float = _ms("04 Token Optimizer")
    cache_check: float = _ms("05 Cache Check")
    model_router: float = _ms("06 Model Router")
    agent_compiler: float = _ms("07 Agent Compiler, model calls and tool execution included")
    tool_call_rounds: int = Field(0, ge=0, le=5, description="the number of rounds in which tools were executed "
                                  "(0 to 5): a count, not milliseconds")
    tool_execution: float = _ms("the action webhooks of 07")


class Citation(BaseModel):
    """A knowledge chunk the prompt carried, and the document it comes from."""

    document_id: uuid.UUID
    document_name: str = Field(description="The file name or URL (or 'agent documents' for FAQs and scenarios).")
    source_id: uuid.UUID
    chunk_id: uuid.UUID


class ChatResponse(BaseModel):
    reply: str
    model_used: str
    cached: bool
    actions_executed: list[str]
    latency_ms: float
    tokens: Tokens
    context_tokens: ContextTokens
    step_timings: StepTimings
    citations: list[Citation] = Field(default_factory=list, description=(
        "The knowledge chunks the prompt carried, in prompt order, each with its document; empty when none "
        "did (a semantic cache hit carries none)."))

"""The OpenAI chat completions contract, as far as Cortex serves it.

Requests accept the parameters OpenAI clients send (unknown ones are ignored, as OpenAI-compatible
servers do); responses are OpenAI's objects plus a `cortex` object with what only Cortex knows.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cortex.pipeline.schemas import StepTimings

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessageIn(Lenient):
    role: Role
    # A string, or a list of parts of which the `text` ones are read.
    content: str | Annotated[list[dict[str, Any]], Field(max_length=100)] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(Lenient):
    include_usage: bool = False


class CompletionCreate(Lenient):
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=1_000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1)] = None
    n: Annotated[int | None, Field(ge=1)] = None
    user: Annotated[str | None, Field(max_length=200)] = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=512)]] | None, Field(max_length=16)] = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CortexInfo(BaseModel):
    cached: bool
    model_used: str
    step_timings: StepTimings
    actions_executed: list[str]
    conversation_id: uuid.UUID
    message_id: uuid.UUID | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    cortex: CortexInfo


class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]

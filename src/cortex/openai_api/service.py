"""OpenAI chat completions over the chat pipeline: which agent, which conversation, which customer.

`model` names an agent of the key's company, by id or slug. With a conversation (`metadata.
conversation_id` or the `X-Cortex-Conversation-Id` header) Cortex keeps the history and memory and
only the request's last user message is read; without one, the request's earlier messages are the
history and each request is a conversation of its own. The customer is `user`, else `metadata.
customer_id`, else one anonymous customer per conversation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from cortex.agents.service import agent_id_for_model, get_agent_by_model
from cortex.db.models import Agent
from cortex.idempotency.service import Replay, fingerprint
from cortex.kit.errors import CortexError, InvalidInput, NotFound
from cortex.kit.runtime import Runtime
from cortex.openai_api.schemas import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    CompletionCreate,
    CortexInfo,
    ModelList,
    ModelPublic,
    Usage,
)
from cortex.pipeline.ports import HistoryTurn
from cortex.pipeline.schemas import ChatRequest, ChatResponse
from cortex.pipeline.streaming import PING, StreamedTurn, sse
from cortex.pipeline.turns import Answered, Idempotency, run_turn

OWNED_BY = "cortex"
DONE = b"data: [DONE]\n\n"
# Keys of `metadata` that Cortex reads itself; the rest travels with the customer's message.
_OWN_METADATA = ("conversation_id", "customer_id")


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist: name one of this company's agents "
                         "(GET /v1/models) by its id or slug")
        self.param = "model"


class UnsupportedParameter(CortexError):
    status_code = 400
    code = "unsupported_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _model_id(agent: Agent) -> str:
    return agent.slug or str(agent.id)


async def list_models(runtime: Runtime, company_id: uuid.UUID) -> ModelList:
    async with runtime.database.session() as session:
        agents = (await session.scalars(select(Agent).where(Agent.company_id == company_id)
                                        .order_by(Agent.created_at, Agent.id))).all()
    return ModelList(data=[ModelPublic(id=_model_id(a), created=int(a.created_at.timestamp()), owned_by=OWNED_BY)
                           for a in agents])


async def get_model(runtime: Runtime, company_id: uuid.UUID, model: str) -> ModelPublic:
    agent = await _agent(runtime, company_id, model)
    return ModelPublic(id=_model_id(agent), created=int(agent.created_at.timestamp()), owned_by=OWNED_BY)


async def _agent(runtime: Runtime, company_id: uuid.UUID, model: str) -> Agent:
    async with runtime.database.session() as session:
        agent = await get_agent_by_model(session, company_id, model)
    if agent is None:
        raise ModelNotFound(model)
    return agent


def _refuse_unsupported(body: CompletionCreate) -> None:
    if body.tools or body.functions:
        param = "tools" if body.tools else "functions"
        raise UnsupportedParameter(param, f"`{param}` are not accepted: a Cortex agent's tools are its own "
                                          "actions, configured on the agent")
    if body.n is not None and body.n > 1:
        raise UnsupportedParameter("n", "only one choice (`n`: 1) is supported")


def _conversation(body: CompletionCreate, header: str | None) -> uuid.UUID | None:
    raw = (body.metadata or {}).get("conversation_id") or header
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        where = "metadata.conversation_id" if (body.metadata or {}).get("conversation_id") else \
            "X-Cortex-Conversation-Id"
        raise UnsupportedParameter(where, f"{where} must be a UUID") from None


def _history(body: CompletionCreate) -> list[HistoryTurn]:
    turns = []
    for message in body.messages[:-1]:
        text = message.text()
        if message.role in ("user", "assistant") and text.strip():
            turns.append(HistoryTurn(role="customer" if message.role == "user" else "assistant", content=text))
    return turns


def _chat_request(body: CompletionCreate, company_id: uuid.UUID, agent_id: uuid.UUID,
                  conversation_id: uuid.UUID) -> ChatRequest:
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise UnsupportedParameter("messages", "the last message must be the customer's: role `user`, with text")
    metadata = body.metadata or {}
    customer = body.user or metadata.get("customer_id") or f"anonymous:{conversation_id}"
    try:
        return ChatRequest(company_id=company_id, agent_id=agent_id, conversation_id=conversation_id,
                           customer_id=customer, message=last.text(), channel="web",
                           metadata={k: v for k, v in metadata.items() if k not in _OWN_METADATA})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = {"message": "messages", "customer_id": "user"}.get(str(first["loc"][0]), str(first["loc"][0]))
        raise InvalidInput(field, first["msg"]) from None


def completion_of(response: ChatResponse, message_id: uuid.UUID | None, *, ident: str, created: int, model: str,
                  conversation_id: uuid.UUID) -> ChatCompletion:
    tokens = response.tokens
    return ChatCompletion(
        id=ident, created=created, model=model,
        choices=[Choice(message=AssistantMessage(content=response.reply))],
        usage=Usage(prompt_tokens=tokens.input, completion_tokens=tokens.output,
                    total_tokens=tokens.input + tokens.output),
        cortex=CortexInfo(cached=response.cached, model_used=response.model_used,
                          step_timings=response.step_timings, actions_executed=response.actions_executed,
                          conversation_id=conversation_id, message_id=message_id),
    )


async def create_completion(runtime: Runtime, company_id: uuid.UUID, body: CompletionCreate, request_id: str, *,
                            conversation_header: str | None,
                            idempotency_key: str | None) -> ChatCompletion | AsyncIterator[bytes]:
    _refuse_unsupported(body)
    agent_id = await agent_id_for_model(runtime.database, company_id, body.model)
    if agent_id is None:
        raise ModelNotFound(body.model)
    given = _conversation(body, conversation_header)
    conversation_id = given or uuid.uuid4()
    request = _chat_request(body, company_id, agent_id, conversation_id)
    ident, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def record(response: ChatResponse, message_id: uuid.UUID) -> dict[str, Any]:
        completion = completion_of(response, message_id, ident=ident, created=created, model=body.model,
                                   conversation_id=conversation_id)
        return completion.model_dump(mode="json")

    key = None
    if idempotency_key is not None:
        # The wire format (`stream`) is not part of what was asked; the conversation header is.
        asked = {**body.model_dump(mode="json", exclude={"stream", "stream_options"}),
                 "conversation_header": conversation_header}
        key = Idempotency(idempotency_key, fingerprint("/v1/chat/completions", asked))
    result = await run_turn(runtime, request, request_id, stream=body.stream, record=record, idempotency_of=key,
                            history=None if given else _history(body), temperature=body.temperature,
                            max_tokens=body.max_completion_tokens or body.max_tokens)
    if isinstance(result, Replay):
        stored = ChatCompletion.model_validate(result.response)
        return _replayed_chunks(stored, include_usage) if body.stream else stored
    if isinstance(result, Answered):
        return ChatCompletion.model_validate(record(result.response, result.message_id))
    return _chunks(result, ident=ident, created=created, model=body.model, include_usage=include_usage,
                   conversation_id=conversation_id)


def _chunk(ident: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None,
           include_usage: bool, **extra: Any) -> bytes:
    data: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
    if include_usage:
        data["usage"] = None  # as OpenAI: only the last chunk carries usage
    return sse(data)


def _usage_chunk(ident: str, created: int, model: str, usage: Usage) -> bytes:
    return sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": usage.model_dump()})


async def _chunks(turn: StreamedTurn, *, ident: str, created: int, model: str, include_usage: bool,
                  conversation_id: uuid.UUID) -> AsyncIterator[bytes]:
    role_sent = False
    async for event in turn.events_iter():
        if event is None:
            yield PING
        elif event.name == "delta":
            delta = {"content": event.data["text"]} if role_sent else {"role": "assistant",
                                                                        "content": event.data["text"]}
            role_sent = True
            yield _chunk(ident, created, model, delta, None, include_usage)
        elif event.name == "done":
            done = dict(event.data)
            message_id = done.pop("message_id", None)
            response = ChatResponse.model_validate(done)
            completion = completion_of(response, uuid.UUID(message_id) if message_id else None, ident=ident,
                                       created=created, model=model, conversation_id=conversation_id)
            delta = {} if role_sent else {"role": "assistant", "content": ""}
            yield _chunk(ident, created, model, delta, "stop", include_usage,
                         cortex=completion.cortex.model_dump(mode="json"))
            if include_usage:
                yield _usage_chunk(ident, created, model, completion.usage)
            yield DONE
        elif event.name == "error":
            data = event.data
            error_type = "server_error" if data["status"] >= 500 else "invalid_request_error"
            yield sse({"error": {"message": data["message"], "type": error_type, "param": None,
                                 "code": data["code"], "status": data["status"], "request_id": data["request_id"]}})


async def _replayed_chunks(stored: ChatCompletion, include_usage: bool) -> AsyncIterator[bytes]:
    """A completion stored under an Idempotency-Key, told again as a stream with its own id."""
    ident, created, model = stored.id, stored.created, stored.model
    yield _chunk(ident, created, model, {"role": "assistant", "content": stored.choices[0].message.content}, None,
                 include_usage)
    yield _chunk(ident, created, model, {}, "stop", include_usage, cortex=stored.cortex.model_dump(mode="json"))
    if include_usage:
        yield _usage_chunk(ident, created, model, stored.usage)
    yield DONE


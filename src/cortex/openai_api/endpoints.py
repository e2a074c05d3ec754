"""`POST /v1/chat/completions`, `GET /v1/models`: thin routes over the OpenAI-compatible service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from cortex.auth.deps import ChatAuth
from cortex.kit.deps import RuntimeDep
from cortex.kit.errors import request_id_of
from cortex.openai_api import service
from cortex.openai_api.schemas import ChatCompletion, CompletionCreate, ModelList, ModelPublic
from cortex.pipeline.endpoints import IdempotencyKeyHeader
from cortex.pipeline.streaming import STREAM_HEADERS

openai_router = APIRouter(prefix="/v1", tags=["openai-compatible"])

ConversationHeader = Annotated[str | None, Header(alias="X-Cortex-Conversation-Id", max_length=64)]
_STREAM_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "with `stream: true`: `chat.completion.chunk` events, then `data: [DONE]`"}}


@openai_router.post("/chat/completions", response_model=ChatCompletion, responses=_STREAM_DOC)
async def create_chat_completion(body: CompletionCreate, request: Request, principal: ChatAuth, runtime: RuntimeDep,
                                 idempotency_key: IdempotencyKeyHeader = None,
                                 conversation_id: ConversationHeader = None) -> ChatCompletion | StreamingResponse:
    result = await service.create_completion(runtime, principal.company_id, body, request_id_of(request),
                                             conversation_header=conversation_id, idempotency_key=idempotency_key)
    if isinstance(result, ChatCompletion):
        return result
    return StreamingResponse(result, media_type="text/event-stream", headers=STREAM_HEADERS)


@openai_router.get("/models", response_model=ModelList)
async def list_models(principal: ChatAuth, runtime: RuntimeDep) -> ModelList:
    return await service.list_models(runtime, principal.company_id)


@openai_router.get("/models/{model}", response_model=ModelPublic)
async def get_model(model: str, principal: ChatAuth, runtime: RuntimeDep) -> ModelPublic:
    return await service.get_model(runtime, principal.company_id, model)

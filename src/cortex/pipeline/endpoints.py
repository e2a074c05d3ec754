"""`POST /v1/chat`: the one call a company's backend makes per customer message."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from cortex.auth.deps import ChatAuth
from cortex.idempotency.service import Replay, fingerprint
from cortex.kit.deps import RuntimeDep
from cortex.kit.errors import request_id_of
from cortex.pipeline.schemas import ChatRequest, ChatResponse
from cortex.pipeline.streaming import STREAM_HEADERS, StreamedTurn, done_body
from cortex.pipeline.turns import Answered, Idempotency, run_turn

chat_router = APIRouter(prefix="/v1", tags=["chat"])

IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]  # checked by the idempotency rules
_STREAM_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "with `stream: true`: server-sent events (step, delta, tool, done, error)"}}


@chat_router.post("/chat", response_model=ChatResponse, responses=_STREAM_DOC)
async def chat(body: ChatRequest, request: Request, principal: ChatAuth, runtime: RuntimeDep,
               idempotency_key: IdempotencyKeyHeader = None) -> ChatResponse | StreamingResponse:
    principal.require_company(body.company_id)
    key = None if idempotency_key is None else Idempotency(
        idempotency_key, fingerprint("/v1/chat", body.model_dump(mode="json", exclude={"stream"})))
    result = await run_turn(runtime, body, request_id_of(request), stream=body.stream, record=done_body,
                            idempotency_of=key)
    heartbeat = runtime.settings.stream_heartbeat_seconds
    if isinstance(result, Replay):
        stored = ChatResponse.model_validate(result.response)
        if not body.stream:
            return stored
        message_id = result.response.get("message_id")
        result = StreamedTurn.replay(stored, uuid.UUID(message_id) if message_id else None, heartbeat)
    if isinstance(result, Answered):
        return result.response
    return StreamingResponse(result.native(), media_type="text/event-stream", headers=STREAM_HEADERS)

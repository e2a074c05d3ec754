"""`POST /v1/chat`: the one call a company's backend makes per customer message."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cortex.auth.deps import ChatAuth
from cortex.kit.deps import RuntimeDep
from cortex.kit.errors import request_id_of
from cortex.pipeline.ports import PIPELINE
from cortex.pipeline.runner import ChatPipeline
from cortex.pipeline.schemas import ChatRequest, ChatResponse

chat_router = APIRouter(prefix="/v1", tags=["chat"])


@chat_router.post("/chat", response_model=ChatResponse)
async def chat(body: ChatRequest, request: Request, principal: ChatAuth, runtime: RuntimeDep) -> ChatResponse:
    principal.require_company(body.company_id)
    pipeline: ChatPipeline = runtime.components[PIPELINE]
    return await pipeline.run(body, request_id_of(request))

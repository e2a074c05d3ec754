"""One customer turn as the chat endpoints run it: plain or streamed, under an Idempotency-Key or not.

Both `POST /v1/chat` and `POST /v1/chat/completions` come through here; each says how its response is
recorded under the key (`record`) and reads a replay back in its own form.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cortex.idempotency import service as idempotency
from cortex.kit.runtime import Runtime
from cortex.pipeline.context import TurnOptions
from cortex.pipeline.ports import PIPELINE, HistoryTurn
from cortex.pipeline.runner import ChatPipeline
from cortex.pipeline.schemas import ChatRequest, ChatResponse
from cortex.pipeline.streaming import StreamedTurn

logger = logging.getLogger(__name__)

Record = Callable[[ChatResponse, uuid.UUID], dict[str, Any]]


@dataclass(frozen=True)
class Answered:
    response: ChatResponse
    message_id: uuid.UUID


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


async def run_turn(runtime: Runtime, request: ChatRequest, request_id: str, *, stream: bool, record: Record,
                   idempotency_of: Idempotency | None = None, history: list[HistoryTurn] | None = None,
                   temperature: float | None = None,
                   max_tokens: int | None = None) -> Answered | StreamedTurn | idempotency.Replay:
    pipeline: ChatPipeline = runtime.components[PIPELINE]
    held: idempotency.Claim | None = None
    if idempotency_of is not None:
        claimed = await idempotency.claim(runtime, request.company_id, idempotency_of.key,
                                          idempotency_of.request_hash)
        if isinstance(claimed, idempotency.Replay):
            return claimed
        held = claimed

    async def succeeded(response: ChatResponse, message_id: uuid.UUID) -> None:
        if held is not None:
            await idempotency.complete(runtime, held, record(response, message_id))

    async def failed(exc: BaseException) -> None:
        if held is not None:
            await idempotency.release(runtime, held)

    if stream:
        turn = StreamedTurn.start(pipeline, request, request_id, history=history, temperature=temperature,
                                  max_tokens=max_tokens, on_success=succeeded, on_failure=failed)
        await turn.opening()
        return turn
    options = TurnOptions(history=history, temperature=temperature, max_tokens=max_tokens)
    try:
        response = await pipeline.run(request, request_id, options)
    except (Exception, asyncio.CancelledError) as exc:
        await asyncio.shield(failed(exc))
        raise
    assert options.message_id is not None
    try:
        await succeeded(response, options.message_id)
    except Exception:  # the turn is stored; a retry finds the claim pending (409) until its lease ends
        logger.exception("could not record the reply under its Idempotency-Key")
    return Answered(response, options.message_id)

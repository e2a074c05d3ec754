"""A chat turn run in a task of its own, its events read by whoever streams them to the client.

The response only reads: a client that hangs up mid-stream stops reading, and the turn still
completes, is stored, and runs its post actions. `opening` waits for the first event that commits the
response (text, a tool run, the end, or a quiet `stream_heartbeat_seconds`), so that a turn that fails
before then is answered as an ordinary JSON error with its status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from cortex.pipeline.context import TurnOptions
from cortex.pipeline.events import FINAL_EVENTS, TurnEvent, TurnEvents
from cortex.pipeline.ports import HistoryTurn
from cortex.pipeline.runner import ChatPipeline
from cortex.pipeline.schemas import ChatRequest, ChatResponse

logger = logging.getLogger(__name__)

# Sent before the first byte of a stream; `X-Accel-Buffering` tells nginx not to hold it back.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PING = b": ping\n\n"
_COMMITTING = frozenset({"delta", "tool", "done", "error"})

OnSuccess = Callable[[ChatResponse, uuid.UUID], Awaitable[None]]
OnFailure = Callable[[BaseException], Awaitable[None]]


def sse(data: dict[str, Any] | str, event_id: int | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {text}\n\n".encode()


def done_body(response: ChatResponse, message_id: uuid.UUID | None) -> dict[str, Any]:
    """The `done` event: the non-streaming response body, plus the stored reply's id."""
    return {**response.model_dump(mode="json"), "message_id": str(message_id) if message_id else None}


async def _logged(step: Awaitable[None], what: str) -> None:
    """The turn is stored either way: bookkeeping that fails after it is logged, not sent to the client."""
    try:
        await step
    except Exception:
        logger.exception("bookkeeping failed %s", what)


class StreamedTurn:
    def __init__(self, events: TurnEvents, heartbeat_seconds: float) -> None:
        self.events = events
        self.heartbeat_seconds = heartbeat_seconds
        self._opened: list[TurnEvent] = []

    @classmethod
    def start(cls, pipeline: ChatPipeline, request: ChatRequest, request_id: str, *,
              history: list[HistoryTurn] | None = None, temperature: float | None = None, max_tokens: int | None = None,
              on_success: OnSuccess | None = None, on_failure: OnFailure | None = None) -> StreamedTurn:
        events = TurnEvents()
        options = TurnOptions(events=events, history=history, temperature=temperature, max_tokens=max_tokens)

        async def run() -> None:
            # Whatever happens, the reader gets a final event: a stream never hangs on a turn that ended.
            try:
                response = await pipeline.run(request, request_id, options)
            except (Exception, asyncio.CancelledError) as exc:
                if on_failure is not None:
                    await _logged(asyncio.shield(on_failure(exc)), "after a failed streamed turn")
                events.error(exc, request_id)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            if not events.text_sent:  # a cache hit or an offline answer: the whole reply at once
                events.delta(response.reply)
            if on_success is not None and options.message_id is not None:
                await _logged(on_success(response, options.message_id), "after a streamed turn")
            events.done(done_body(response, options.message_id))

        pipeline.background.spawn(run(), name=f"streamed-turn:{request_id}")
        return cls(events, pipeline.runtime.settings.stream_heartbeat_seconds)

    @classmethod
    def replay(cls, response: ChatResponse, message_id: uuid.UUID | None, heartbeat_seconds: float) -> StreamedTurn:
        """A stored reply (an Idempotency-Key seen before) told as a stream: one delta, then done."""
        events = TurnEvents()
        events.delta(response.reply)
        events.done(done_body(response, message_id))
        return cls(events, heartbeat_seconds)

    async def opening(self) -> None:
        """Wait until the response can commit to streaming; raise the turn's error if it failed first."""
        while True:
            event = await self.events.next(self.heartbeat_seconds)
            if event is None:
                return
            self._opened.append(event)
            if event.name == "error" and self.events.failure is not None:
                raise self.events.failure
            if event.name in _COMMITTING:
                return

    async def events_iter(self) -> AsyncIterator[TurnEvent | None]:
        """The events in order, then the rest as they come; None for each quiet heartbeat interval."""
        for event in self._opened:
            yield event
            if event.name in FINAL_EVENTS:
                return
        async for later in self._later():
            yield later

    async def _later(self) -> AsyncIterator[TurnEvent | None]:
        while True:
            event = await self.events.next(self.heartbeat_seconds)
            yield event
            if event is not None and event.name in FINAL_EVENTS:
                return

    async def native(self) -> AsyncIterator[bytes]:
        """`POST /v1/chat` with `stream: true`: each event one `data:` line with its id.

        What `opening` gathered goes out in one write, so the first delta is not behind a write per step.
        """
        yield b"".join(sse(event.payload(), event.id) for event in self._opened)
        if any(event.name in FINAL_EVENTS for event in self._opened):
            return
        async for event in self._later():
            yield PING if event is None else sse(event.payload(), event.id)

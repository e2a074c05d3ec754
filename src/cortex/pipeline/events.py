"""What a streamed turn tells its reader as it runs: steps, reply text, tools, then `done` or `error`.

The pipeline writes and never waits: the queue is unbounded, so a slow reader or one that hung up
cannot hold the turn back. Events are numbered in order; the number is the SSE `id`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from cortex.kit.errors import CortexError, error_code

# The events that end a stream.
FINAL_EVENTS = frozenset({"done", "error"})


@dataclass(frozen=True)
class TurnEvent:
    id: int
    name: str  # step | delta | tool | done | error
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"event": self.name, **self.data}


class TurnEvents:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        self._count = 0
        self.text_sent = False
        # The exception the turn failed with (the endpoint re-raises it when nothing was sent yet).
        self.failure: BaseException | None = None

    def _put(self, name: str, data: dict[str, Any]) -> None:
        self._count += 1
        self._queue.put_nowait(TurnEvent(self._count, name, data))

    def step(self, name: str, ms: float) -> None:
        self._put("step", {"name": name, "ms": ms})

    def delta(self, text: str) -> None:
        if text:
            self.text_sent = True
            self._put("delta", {"text": text})

    def tool(self, name: str, status: int | None, outcome: str, ms: float) -> None:
        self._put("tool", {"name": name, "status": status, "outcome": outcome, "ms": ms})

    def done(self, body: dict[str, Any]) -> None:
        self._put("done", body)

    def error(self, exc: BaseException, request_id: str) -> None:
        self.failure = exc
        status = exc.status_code if isinstance(exc, CortexError) else 500
        message = exc.detail if isinstance(exc, CortexError) else "internal error"
        self._put("error", {"status": status, "code": error_code(exc), "message": message,
                            "request_id": request_id})

    async def next(self, timeout_seconds: float) -> TurnEvent | None:
        """The next event, or None when none came within `timeout_seconds`."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_seconds)
        except TimeoutError:
            return None

"""A loopback relay in front of the live Cortex, for the client's failure paths.

Each call is forwarded to the real server (or not) by a scripted answer: lose the answer after Cortex
ran the request, refuse with a status first, hold the answer back, or cut an event stream after its
first event. Cortex itself stays real; only the network between client and server misbehaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.responses import Response, StreamingResponse

from tests.webhook_target import Call, WebhookTarget

# Hop-by-hop and length headers that the relay's own server sets.
_DROP = {"host", "content-length", "transfer-encoding", "connection"}
Step = Callable[[Call], Awaitable[Response]]


class Relay(WebhookTarget):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.steps: list[Step] = []
        self.answer = self._next

    async def _next(self, call: Call) -> Response:
        step = self.steps.pop(0) if self.steps else self.forward
        return await step(call)

    def _request(self, call: Call) -> httpx.Request:
        headers = {name: value for name, value in call.headers.items() if name not in _DROP}
        return httpx.Request(call.method, self.upstream + call.raw_path, headers=headers, content=call.body)

    async def forward(self, call: Call) -> Response:
        """The upstream answer, passed on as it arrives (an event stream never ends by itself)."""
        http = httpx.AsyncClient(timeout=30)
        answer = await http.send(self._request(call), stream=True)
        headers = {name: value for name, value in answer.headers.items()
                   if name not in _DROP and name != "content-encoding"}

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    yield chunk
            finally:
                await answer.aclose()
                await http.aclose()

        return StreamingResponse(body(), status_code=answer.status_code, headers=headers)

    def then(self, *steps: Step) -> None:
        self.steps.extend(steps)


def refuse(status: int, retry_after: str | None = None) -> Step:
    async def step(call: Call) -> Response:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return Response('{"detail": "try again"}', status_code=status, headers=headers,
                        media_type="application/json")
    return step


def lose_answer(relay: Relay) -> Step:
    """Cortex runs the request in full; the client gets a 502 instead of its answer."""
    async def step(call: Call) -> Response:
        answer = await relay.forward(call)
        assert isinstance(answer, StreamingResponse)
        async for _ in answer.body_iterator:  # read to the end: the request ran in full
            pass
        return Response('{"detail": "bad gateway"}', status_code=502, media_type="application/json")
    return step


def hold(seconds: float) -> Step:
    async def step(call: Call) -> Response:
        await asyncio.sleep(seconds)
        return Response("{}", media_type="application/json")
    return step


def cut_after_first_event(relay: Relay) -> Step:
    """An event stream that ends after its first event frame, as a dropped connection would."""
    async def step(call: Call) -> Response:
        http = httpx.AsyncClient(timeout=30)
        upstream = await http.send(relay._request(call), stream=True)

        async def body() -> AsyncIterator[bytes]:
            buffer = b""
            try:
                async for chunk in upstream.aiter_bytes():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        frame, buffer = buffer.split(b"\n\n", 1)
                        yield frame + b"\n\n"
                        if frame.startswith(b"id:"):
                            return
            finally:
                await upstream.aclose()
                await http.aclose()

        return StreamingResponse(body(), status_code=upstream.status_code, media_type="text/event-stream")
    return step

"""A scripted OpenAI-compatible chat completions server on loopback, which LiteLLM really calls.

The only fake in the test suite: it stands in for the LLM providers the machine cannot reach. Each
request is answered by a `Script` (a function of the request body) and recorded, so tests can check
exactly what Cortex sent. Benchmarks use it as the upstream model too.

A request with `"stream": true` is answered as OpenAI streams: `chat.completion.chunk` events, one
per word of the text (each after `token_delay_seconds`), tool calls in pieces, a last chunk with
`usage` when `stream_options.include_usage` asks for it, then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class ToolCall:
    name: str
    arguments: str  # raw JSON text, possibly malformed on purpose
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    delay_seconds: float = 0.0
    status: int = 200
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Streams only: the pause before each word; None takes the server's `token_delay_seconds`.
    token_delay_seconds: float | None = None
    # Streams only: the connection drops after this many words (a provider failing mid-reply).
    fail_after_tokens: int | None = None
    # When set, the answer is this JSON body with status 200, as is (a provider answering nonsense).
    raw: Any = None


Script = Callable[[dict[str, Any]], Reply]


def echo(body: dict[str, Any]) -> Reply:
    """Default script: answer with the last user message, so replies are checkable."""
    last = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
    return Reply(text=f"echo: {_text(last.get('content'))}")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


class ScriptedLLM:
    def __init__(self, script: Script = echo) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        # Embeddings: deterministic hashed bag-of-words vectors; status/delay let tests break or slow them.
        self.embedding_requests: list[dict[str, Any]] = []
        self.embedding_status = 200
        self.embedding_delay_seconds = 0.0
        # When set, /v1/embeddings answers 200 with this body as is (a provider answering nonsense).
        self.embedding_body: Any = None
        # /v1/models (what /health/detailed probes): how often it was asked, and with which status it answers.
        self.models_requests = 0
        self.models_status = 200
        self.token_delay_seconds = 0.0
        self.port = _free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: Reply, then: Script = echo) -> None:
        """Answer the next requests with `replies` in order, then fall back to `then`."""
        pending = list(replies)

        def script(body: dict[str, Any]) -> Reply:
            return pending.pop(0) if pending else then(body)

        self.script = script

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.script(body)
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        if reply.status != 200:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}},
                                status_code=reply.status)
        if reply.raw is not None:
            return JSONResponse(reply.raw)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in reply.tool_calls
            ]
        prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else _rough_tokens(body)
        completion_tokens = (reply.completion_tokens if reply.completion_tokens is not None
                             else max(1, len((reply.text or "").split())))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        if body.get("stream"):
            return StreamingResponse(self._chunks(body, reply, usage), media_type="text/event-stream")
        return JSONResponse({
            "id": "chatcmpl-" + uuid.uuid4().hex[:16],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": usage,
        })

    async def _chunks(self, body: dict[str, Any], reply: Reply, usage: dict[str, int]) -> Any:
        ident, created, model = "chatcmpl-" + uuid.uuid4().hex[:16], int(time.time()), body.get("model", "scripted")

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            return f"data: {json.dumps(data)}\n\n".encode()

        delay = reply.token_delay_seconds if reply.token_delay_seconds is not None else self.token_delay_seconds
        yield chunk({"role": "assistant", "content": ""})
        for number, word in enumerate(words(reply.text or "")):
            if reply.fail_after_tokens is not None and number >= reply.fail_after_tokens:
                raise ConnectionResetError("scripted failure mid-stream")
            if delay:
                await asyncio.sleep(delay)
            yield chunk({"content": word})
        for index, call in enumerate(reply.tool_calls):
            yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                         "function": {"name": call.name, "arguments": ""}}]})
            half = len(call.arguments) // 2
            for piece in (call.arguments[:half], call.arguments[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            data = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": usage}
            yield f"data: {json.dumps(data)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        self.embedding_requests.append(body)
        if self.embedding_delay_seconds:
            await asyncio.sleep(self.embedding_delay_seconds)
        if self.embedding_status != 200:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}},
                                status_code=self.embedding_status)
        if self.embedding_body is not None:
            return JSONResponse(self.embedding_body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or 1536)
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(str(t), dims)}
                for i, t in enumerate(texts)]
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse({"object": "list", "data": data, "model": body.get("model", "scripted"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _models(self, request: Request) -> Response:
        self.models_requests += 1
        if self.models_status != 200:
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=self.models_status)
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
            Route("/chat/completions", self._completions, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
        ])

    def start(self) -> ScriptedLLM:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


def words(text: str) -> list[str]:
    """The pieces a stream sends: each word with the spaces after it (joined, they are the text)."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def hashed_embedding(text: str, dims: int) -> list[float]:
    """A bag of lower-cased words hashed into `dims` buckets, unit length: texts sharing words are close."""
    import hashlib
    import math
    import re

    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.blake2b(word.encode(), digest_size=8).hexdigest(), 16) % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _rough_tokens(body: dict[str, Any]) -> int:
    return max(1, len(json.dumps(body.get("messages", []))) // 4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_api_base() -> str:
    """An address where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{_free_port()}/v1"


@contextmanager
def scripted_llm(script: Script = echo) -> Iterator[ScriptedLLM]:
    server = ScriptedLLM(script).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """`python -m tests.scripted_llm --port N [--delay-ms D] [--token-delay-ms T]`: serve the echo script."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="pause before each streamed word")
    args = parser.parse_args()
    delay = args.delay_ms / 1000

    def script(body: dict[str, Any]) -> Reply:
        reply = echo(body)
        reply.delay_seconds = delay
        return reply

    server = ScriptedLLM(script)
    server.token_delay_seconds = args.token_delay_ms / 1000
    server.requests = _Discard()
    uvicorn.run(server.app(), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


class _Discard(list[dict[str, Any]]):
    """A long-running server must not keep every request it answered."""

    def append(self, item: dict[str, Any]) -> None:
        return None


if __name__ == "__main__":
    main()

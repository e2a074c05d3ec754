"""A loopback HTTP server standing in for a company's webhooks: records every call, answers by script."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.scripted_llm import _free_port


@dataclass
class Call:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else None


# An answer may be a coroutine function too (a slow endpoint that sleeps without blocking the server).
Answer = Callable[[Call], Response | Awaitable[Response]]


def ok_json(call: Call) -> Response:
    return JSONResponse({"ok": True, "path": call.path, "query": call.query})


class WebhookTarget:
    def __init__(self, answer: Answer = ok_json) -> None:
        self.answer = answer
        self.calls: list[Call] = []
        self.port = _free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer_in_order(self, *answers: Answer, then: Answer = ok_json) -> None:
        pending = list(answers)
        self.answer = lambda call: (pending.pop(0) if pending else then)(call)

    async def _handle(self, request: Request) -> Response:
        raw_path = request.scope["raw_path"].decode()
        call = Call(request.method, request.url.path, raw_path, dict(request.query_params), dict(request.headers),
                    await request.body())
        self.calls.append(call)
        answer = self.answer(call)
        return await answer if inspect.isawaitable(answer) else answer

    def start(self) -> WebhookTarget:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("webhook target did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

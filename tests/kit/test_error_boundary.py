"""Every error is a handled response, so a keep-alive connection survives it (a real uvicorn, a real socket)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from cortex.kit.errors import ErrorBoundaryMiddleware, register_error_handlers


class FailingMiddleware:
    """Raises before the app for /middleware-fails: an error no exception handler sees."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/middleware-fails":
            raise RuntimeError("a bug in a middleware")
        await self.app(scope, receive, send)


def _app() -> FastAPI:
    app = FastAPI()
    register_error_handlers(app)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/route-fails")
    async def route_fails() -> None:
        raise RuntimeError("a bug in a route")

    @app.get("/refused")
    async def refused() -> None:
        raise ConnectionRefusedError(111, "Connect call failed")  # what asyncpg lets out when PostgreSQL is down

    app.add_middleware(FailingMiddleware)
    app.add_middleware(ErrorBoundaryMiddleware)
    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_errors_keep_the_connection_open(base_url: str) -> None:
    connections: list[object] = []
    with httpx.Client(base_url=base_url, timeout=5,
                      event_hooks={"response": [lambda r: connections.append(r.extensions["network_stream"])]}
                      ) as http:
        for path, status in (("/route-fails", 500), ("/ok", 200), ("/middleware-fails", 500), ("/ok", 200),
                             ("/refused", 503), ("/ok", 200)):
            response = http.get(path)
            assert response.status_code == status, path
            assert response.headers.get("connection") != "close"
            if status == 500:
                assert response.json()["detail"] == "internal error" and response.json()["request_id"]
            if status == 503:
                assert response.headers["Retry-After"] == "5"
    assert len({id(c) for c in connections}) == 1  # one socket served all six

"""A real Cortex HTTP server on a loopback port, for tests that drive it with real clients.

uvicorn runs `create_app(settings)` in a thread with its own event loop, so the app builds its own
runtime (its own pools and caches) exactly as `cortex serve` does; `call` runs a coroutine on that loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from cortex.app import create_app
from cortex.kit.runtime import Runtime
from cortex.settings import Settings
from tests.support import run_jobs

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveCortex:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.port = _free_port()
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="on"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._server.serve())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def start(self) -> LiveCortex:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Cortex server did not start")
            time.sleep(0.02)
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_seconds: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_seconds)

    def settle(self) -> None:
        """Run what follows the replies (post actions, cache stores) on the server, as its worker would."""
        runtime = self.runtime
        cache = runtime.components["semantic_cache"]

        async def drain() -> None:
            await run_jobs(runtime)
            await cache.background.drain()

        self.call(drain())

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

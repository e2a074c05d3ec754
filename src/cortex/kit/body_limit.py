"""A cap on request bodies, enforced before they are read.

A `Content-Length` over the limit is answered 413 at once, without reading a byte; a body without one
(chunked) is counted as it arrives and refused with 413 as soon as it passes the limit, so no request
costs more memory than the limit. JSON and every other body get CORTEX_MAX_BODY_BYTES; a multipart
upload to one of the upload routes gets CORTEX_INGEST_MAX_FILE_BYTES plus room for the form's framing.
Only `receive` is wrapped: responses (streams included) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cortex.kit.errors import error_response
from cortex.settings import Settings

if TYPE_CHECKING:
    from cortex.kit.runtime import Runtime

# Boundaries, part headers and the small form fields that travel beside the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
_DEFAULTS = Settings.model_fields


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit.

    An HTTPException so that FastAPI, reading the body inside a route, re-raises it and the app's handler
    answers 413; the middleware answers it itself when a middleware further in was reading.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large(limit))


def too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, upload_paths: Sequence[str] = ()) -> None:
        self.app = app
        self.upload_patterns = [compile_path(path)[0] for path in upload_paths]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refusal(scope, limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await _refusal(scope, limit)(scope, receive, send)

    def _limit(self, scope: Scope) -> int:
        settings = _settings(scope)
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
        if content_type.startswith(b"multipart/form-data") and any(
                pattern.match(scope.get("path", "")) for pattern in self.upload_patterns):
            files: int = (settings.ingest_max_file_bytes if settings is not None
                          else _DEFAULTS["ingest_max_file_bytes"].default)
            return files + MULTIPART_OVERHEAD_BYTES
        body: int = settings.max_body_bytes if settings is not None else _DEFAULTS["max_body_bytes"].default
        return body


def _settings(scope: Scope) -> Settings | None:
    runtime: Runtime | None = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    return runtime.settings if runtime is not None else None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


def _refusal(scope: Scope, limit: int) -> JSONResponse:
    # On the OpenAI-compatible paths the refusal takes OpenAI's error shape, as every other error there does.
    return error_response(str(scope.get("path", "")), 413, {"detail": too_large(limit)})

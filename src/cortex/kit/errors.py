"""Typed errors, mapped to HTTP responses once, in `register_error_handlers`.

A database or Redis that cannot be reached (refused, shutting down, a pooled connection cut, the pool
exhausted) is a 503 with `Retry-After`, never a 500: the request may be sent again once it is back.
Every error leaves as a handled response (`ErrorBoundaryMiddleware` answers what no handler took), so
the server keeps the connection open for the client's next request.

Paths of the OpenAI-compatible API (`OPENAI_PATHS`) answer every error in OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with the same status: OpenAI clients read it.
"""

from __future__ import annotations

import errno
import logging
import uuid
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cortex.kit import text_guard

logger = logging.getLogger(__name__)

# PostgreSQL's 'invalid byte sequence' (a NUL in text) and 'untranslatable character' (\u0000 in jsonb).
UNSTORABLE_TEXT_STATES = frozenset({"22021", "22P05"})
# The server is going away or refusing connections (class 08 is every connection exception).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_UNREACHABLE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH,
                                 errno.ETIMEDOUT, errno.EPIPE})
# What a client is told to wait before sending again during an outage.
OUTAGE_RETRY_AFTER_SECONDS = 5


class CortexError(Exception):
    status_code = 400
    default_detail = "bad request"
    # A stable machine-readable name for the error (stream `error` events, the OpenAI-shaped body).
    code = "bad_request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail or self.default_detail)
        self.detail = detail or self.default_detail
        self.headers = headers
        self.extra = extra or {}


class NotFound(CortexError):
    status_code = 404
    code = "not_found"
    default_detail = "not found"


class Unauthorized(CortexError):
    status_code = 401
    code = "unauthorized"
    default_detail = "not authenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(CortexError):
    status_code = 403
    code = "forbidden"
    default_detail = "forbidden"


class Conflict(CortexError):
    status_code = 409
    code = "conflict"
    default_detail = "conflict"


class InvalidInput(CortexError):
    """A semantic validation failure that Pydantic could not see (reported like a 422 from FastAPI)."""

    status_code = 422
    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def body(self) -> dict[str, Any]:
        loc = ["body", *self.field.split(".")] if self.field else ["body"]
        return {"detail": [{"loc": loc, "msg": self.detail, "type": "value_error"}]}


class InvalidQuery(InvalidInput):
    """A query parameter that its type alone could not check."""

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": ["query", self.field], "msg": self.detail, "type": "value_error"}]}


class ConfigurationError(CortexError):
    """The agent's own configuration is unusable (e.g. its prompt template does not render)."""

    status_code = 422
    code = "configuration_error"
    default_detail = "agent configuration error"


class RateLimited(CortexError):
    status_code = 429
    code = "rate_limited"
    default_detail = "rate limit exceeded"


class BadGateway(CortexError):
    """An upstream service answered, but with an error or with something unusable."""

    status_code = 502
    code = "bad_gateway"
    default_detail = "bad answer from an upstream service"


class ServiceUnavailable(CortexError):
    status_code = 503
    code = "service_unavailable"
    default_detail = "service unavailable"


class GatewayTimeout(CortexError):
    status_code = 504
    code = "gateway_timeout"
    default_detail = "upstream timed out"


def unavailable_dependency(exc: BaseException) -> str | None:
    """What cannot be reached now, when `exc` (or what caused it) says so: "database", "redis", or "backing
    service" for a bare socket error (asyncpg's connect lets the socket's own error out, unwrapped)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return "redis"
        if isinstance(seen, PoolTimeout):
            return "database"
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return "database"
        # The hot reads run on the pooled asyncpg connection itself: a connection the server closed
        # (a restart, a fast shutdown) raises asyncpg's own error, with no SQLAlchemy wrapper around it.
        if isinstance(seen, asyncpg.InterfaceError) and "connection is closed" in str(seen):
            return "database"
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES):
            return "database"
        if isinstance(seen, ConnectionError | TimeoutError) or (
                isinstance(seen, OSError) and seen.errno in _UNREACHABLE_ERRNOS):
            return "backing service"
        seen = seen.__cause__ or seen.__context__
    return None


def unavailable_response(request: Request, dependency: str) -> JSONResponse:
    rid = request_id_of(request)
    logger.warning("dependency unavailable", extra={"request_id": rid, "dependency": dependency})
    return error_response(request.url.path, 503, {"detail": f"the {dependency} is unavailable; try again shortly",
                                                  "request_id": rid},
                          {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS), "X-Request-ID": rid},
                          code="service_unavailable")


def unexpected_response(request: Request, exc: BaseException) -> JSONResponse:
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        return unavailable_response(request, dependency)
    rid = request_id_of(request)
    logger.error("unhandled error", extra={"request_id": rid}, exc_info=exc)
    # This may answer outside the middlewares, so the request id header is set here too.
    return error_response(request.url.path, 500, {"detail": "internal error", "request_id": rid},
                          {"X-Request-ID": rid}, code="internal_error")


class ErrorBoundaryMiddleware:
    """Answers an exception no handler took (one raised in a middleware, or not mapped) as a response.

    Starlette's own last handler re-raises after answering, and uvicorn then closes the keep-alive
    connection without `Connection: close`: the client's next request on it dies without a status.
    Once a response has started (a stream) there is nothing left to answer, so the error goes on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            await unexpected_response(Request(scope), exc)(scope, receive, send)


# Where errors take OpenAI's shape: the OpenAI-compatible API's routes.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 409: "conflict_error", 429: "rate_limit_error"}


def is_openai_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OPENAI_PATHS)


def _openai_body(status: int, body: dict[str, Any], code: str | None, param: str | None) -> dict[str, Any]:
    detail = body.get("detail")
    if isinstance(detail, list):  # validation errors: the first one's field is the param
        first = detail[0] if detail else {}
        loc = [str(part) for part in first.get("loc", [])]
        param = param or ".".join(loc[1:] if loc[:1] in (["body"], ["query"], ["path"], ["header"]) else loc) or None
        message = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}" for e in detail)
        code = code or "invalid_input"
    else:
        message = str(detail or "error")
    error_type = _OPENAI_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(path: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None, *,
                   code: str | None = None, param: str | None = None) -> JSONResponse:
    """An error body as `path` answers it: Cortex's `{"detail": ...}`, or OpenAI's shape on its paths."""
    if is_openai_path(path):
        body = _openai_body(status, body, code, param)
    return JSONResponse(body, status_code=status, headers=headers)


def error_code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, CortexError) else "internal_error"


def request_id_of(request: Request) -> str:
    """The id `observability.middleware` gave the request (made here only for an app without it)."""
    rid = getattr(request.state, "request_id", None)
    if not rid:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
    return str(rid)


async def _outage(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_response(request, exc)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(request.url.path, 422, exc.body(), code=exc.code, param=exc.field or None)

    @app.exception_handler(CortexError)
    async def _cortex(request: Request, exc: CortexError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.detail, **exc.extra}
        if exc.status_code >= 500:
            body["request_id"] = request_id_of(request)
        return error_response(request.url.path, exc.status_code, body, exc.headers, code=exc.code,
                              param=getattr(exc, "param", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's `input`/`ctx` may hold secrets (passwords) or non-JSON values: keep loc/msg/type.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return error_response(request.url.path, 422, {"detail": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request.url.path, exc.status_code, {"detail": exc.detail},
                              getattr(exc, "headers", None))

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        # The row an update loaded was deleted (or changed) by a concurrent request before the write.
        return error_response(request.url.path, 409,
                              {"detail": "the resource changed while this request ran; read it again"})

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # Text the guard middleware could not see (a multipart form field) that PostgreSQL refused.
        if getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT_STATES:
            return error_response(request.url.path, 422, {
                "detail": [{"loc": ["body"], "msg": text_guard.MESSAGE, "type": "value_error"}]})
        return unexpected_response(request, exc)

    # Answered here (inside the middlewares) rather than by the boundary: the access log and the
    # request id header see the 503 as they see every other status.
    for outage in (PoolTimeout, OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_response(request, exc)

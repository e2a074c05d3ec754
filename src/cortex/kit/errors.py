"""Typed errors, mapped to HTTP responses once, in `register_error_handlers`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cortex.kit import text_guard

logger = logging.getLogger(__name__)

# PostgreSQL's 'invalid byte sequence' (a NUL in text) and 'untranslatable character' (\u0000 in jsonb).
UNSTORABLE_TEXT_STATES = frozenset({"22021", "22P05"})


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


def error_code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, CortexError) else "internal_error"


def request_id_of(request: Request) -> str:
    """The id `observability.middleware` gave the request (made here only for an app without it)."""
    rid = getattr(request.state, "request_id", None)
    if not rid:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
    return str(rid)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=422)

    @app.exception_handler(CortexError)
    async def _cortex(request: Request, exc: CortexError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.detail, **exc.extra}
        if exc.status_code >= 500:
            body["request_id"] = request_id_of(request)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's `input`/`ctx` may hold secrets (passwords) or non-JSON values: keep loc/msg/type.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        # The row an update loaded was deleted (or changed) by a concurrent request before the write.
        return JSONResponse({"detail": "the resource changed while this request ran; read it again"},
                            status_code=409)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # Text the guard middleware could not see (a multipart form field) that PostgreSQL refused.
        if getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT_STATES:
            return JSONResponse({"detail": [{"loc": ["body"], "msg": text_guard.MESSAGE, "type": "value_error"}]},
                                status_code=422)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        logger.exception("unhandled error", extra={"request_id": rid})
        # This handler answers outside the middlewares, so the request id header is set here too.
        return JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500,
                            headers={"X-Request-ID": rid})

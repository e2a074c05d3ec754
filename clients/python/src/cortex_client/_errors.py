"""The client's errors, one class per kind of failure, chosen by HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class CortexError(Exception):
    """Base of every error this client raises."""


class APIConnectionError(CortexError):
    """The request did not get an answer: the connection failed or broke."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """No answer within the timeout."""


@dataclass(frozen=True)
class FieldError:
    """One entry of a 422 answer: where (`loc`, e.g. ("body", "message")), what and its type."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    @property
    def field(self) -> str:
        """The field's dotted path without the "body"/"query"/"path"/"header" prefix."""
        parts = self.loc[1:] if self.loc and self.loc[0] in ("body", "query", "path", "header") else self.loc
        return ".".join(str(part) for part in parts)


class APIStatusError(CortexError):
    """Cortex answered with an error status."""

    status_code: int = 0

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.request_id: str | None = response.headers.get("x-request-id") or (
            body.get("request_id") if isinstance(body, dict) else None)


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, response=response, body=body)
        detail = body.get("detail") if isinstance(body, dict) else None
        self.errors: list[FieldError] = [
            FieldError(tuple(item.get("loc") or ()), str(item.get("msg", "")), str(item.get("type", "")))
            for item in detail if isinstance(item, dict)] if isinstance(detail, list) else []

    @property
    def field_errors(self) -> dict[str, str]:
        """Each failing field's message, by dotted field path."""
        return {error.field: error.msg for error in self.errors}


class RateLimitError(APIStatusError):
    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, response=response, body=body)
        from cortex_client._retry import parse_retry_after

        self.retry_after: float | None = parse_retry_after(response.headers.get("retry-after"))


class InternalServerError(APIStatusError):
    """Any 5xx answer (500, 502, 503, 504)."""


class StreamError(CortexError):
    """A streamed chat turn that failed after the stream had started (its `error` event)."""

    def __init__(self, message: str, *, status_code: int, code: str | None, request_id: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 422: UnprocessableEntityError, 429: RateLimitError,
}


def _message(status: int, body: Any) -> str:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        parts = [f"{FieldError(tuple(d.get('loc') or ()), '', '').field or 'body'}: {d.get('msg', '')}"
                 for d in detail if isinstance(d, dict)]
        return f"{status}: " + "; ".join(parts)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # the OpenAI-compatible paths' shape
        return f"{status}: {body['error'].get('message', '')}"
    if detail is not None:
        return f"{status}: {detail}"
    return f"{status}: {body if isinstance(body, str) and body else 'error'}"


def error_for(response: httpx.Response) -> APIStatusError:
    """The typed error of an error response whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    status = response.status_code
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    return cls(_message(status, body), response=response, body=body)

"""The OpenAPI document as a contract: security, error responses, summaries and examples on every operation.

FastAPI derives paths, parameters and success bodies from the routes. What it cannot see is added here,
from the routes themselves where it can be derived (which key scope a route requires, whether it has a
body or path parameters) and from `operations.OPERATIONS` where it cannot (summary, description, the
statuses particular to one operation, a request example). `tests/api_docs/test_contract.py` fails when a
route has no entry there, and when the live document differs from the checked-in `openapi.json`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict

from cortex.api_docs.operations import OPERATIONS, TAGS, Operation
from cortex.auth.deps import ApiKeyAuth, portal_user
from cortex.kit.errors import is_openai_path

API_KEY_SCHEME = "apiKey"
PORTAL_SCHEME = "portalSession"
SECURITY_SCHEMES: dict[str, Any] = {
    API_KEY_SCHEME: {
        "type": "http", "scheme": "bearer", "bearerFormat": "ctx_...",
        "description": "An API key (`Authorization: Bearer ctx_...`), made in the portal or with "
                       "`cortex keys create`. Each operation names the scope it needs; `*` holds every scope.",
    },
    PORTAL_SCHEME: {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A portal session token from `POST /portal/api/login`.",
    },
}


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error Cortex answers outside the OpenAI-compatible paths. `detail` is a message, or the list
    of fields that failed validation (422); a 5xx carries the `request_id` to quote in a report; some
    errors add fields of their own (a 429 adds `scope`, `limit` and `retry_after`)."""

    model_config = ConfigDict(extra="allow", title="Error")
    detail: str | list[ValidationIssue]
    request_id: str | None = None


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """Errors on `/v1/chat/completions` and `/v1/models`, in OpenAI's shape, so OpenAI SDKs raise them."""

    model_config = ConfigDict(title="OpenAIError")
    error: OpenAIErrorDetail


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed in a way its schema cannot express.",
    401: "No API key (or session token), or one that is unknown, revoked or expired.",
    403: "The key lacks the scope this operation needs, or asks for more than the key may grant.",
    404: "Not found, or another company's: another company's ids are answered as unknown.",
    409: "Conflicts with the current state (a duplicate, or a concurrent change); read it again.",
    413: "The request body is larger than the server accepts.",
    422: "A field failed validation: `detail` lists each with its `loc` (e.g. `[\"query\", \"sort\"]`).",
    429: "Rate limit exceeded: wait `Retry-After` seconds.",
    500: "Internal error: quote `request_id` when reporting it.",
    502: "An upstream service (model or embedding provider) answered with an error.",
    503: "An upstream service is unreachable or not configured.",
    504: "The model did not answer in time.",
}
# One server-sent event, as OpenAPI 3.1 tools (schemathesis among them) read a `text/event-stream` schema:
# the shape of each event, not of the whole stream. `data` holds JSON (`[DONE]` ends an OpenAI stream).
SSE_EVENT: dict[str, Any] = {
    "type": "object", "title": "ServerSentEvent", "required": ["data"],
    "properties": {
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "The event's JSON (`[DONE]` closes a `/v1/chat/completions` stream)."},
        "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"},
    },
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds until the limit resets.", "schema": {"type": "integer"}}}


def _dependencies(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _dependencies(dependency)


def route_auth(route: APIRoute, operation: Operation) -> tuple[str | None, str | None]:
    """(security scheme, scope) that a route requires, read from its dependencies."""
    for call in _dependencies(route.dependant):
        if isinstance(call, ApiKeyAuth):
            return API_KEY_SCHEME, call.scope
        if call is portal_user:
            return PORTAL_SCHEME, None
    if operation.scope is not None:
        return API_KEY_SCHEME, operation.scope
    return None, None


def error_statuses(path: str, method: str, operation: Operation, scheme: str | None,
                   spec: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer: those every route of its kind has, and its own."""
    statuses = {500, *operation.errors}
    if scheme is not None:
        statuses |= {401} if scheme == PORTAL_SCHEME else {401, 403}
    if path == "/v1" or path.startswith("/v1/"):
        statuses.add(429)  # the rate limiter runs before routing, on every /v1 request
    if spec.get("parameters") or spec.get("requestBody"):
        statuses.add(422)
    if spec.get("requestBody"):
        statuses.add(413)  # the body limit, and a NUL in a body answers 422
        statuses.add(422)
    if "{" in path:
        statuses.add(404)
    if method in ("patch", "delete"):
        statuses.add(409)  # the row changed or went while the request ran
    return statuses - operation.never


def _success_schema(spec: dict[str, Any]) -> dict[str, Any] | None:
    for status in ("200", "201"):
        content = spec.get("responses", {}).get(status, {}).get("content", {})
        if "application/json" in content and content["application/json"].get("schema"):
            return dict(content["application/json"]["schema"])
    return None


def _error_response(status: int, existing: dict[str, Any] | None, spec: dict[str, Any], openai: bool) -> dict[str, Any]:
    error_ref = {"$ref": "#/components/schemas/" + ("OpenAIError" if openai else "Error")}
    schema: dict[str, Any] = error_ref
    description = ERROR_DESCRIPTIONS.get(status, "Error.")
    if existing is not None:
        description = existing.get("description") or description
        declared = existing.get("content", {}).get("application/json", {}).get("schema")
        # A status declared with a description only is answered with the operation's own result (its
        # `status` says `failed`, e.g. an ingestion whose file had no text) or, for the same status, an error.
        other = declared if declared and declared.get("$ref") != "#/components/schemas/HTTPValidationError" \
            else (_success_schema(spec) if not declared else None)
        if other is not None:
            schema = {"anyOf": [other, error_ref]}
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if status == 429:
        response["headers"] = RETRY_AFTER
    return response


def _describe(operation: Operation, scheme: str | None, scope: str | None) -> str:
    parts = [operation.description.strip()]
    if scheme == API_KEY_SCHEME:
        parts.append(f"**Authentication:** an API key with the `{scope}` scope (or `*`)."
                     + (f" {operation.auth_note}" if operation.auth_note else ""))
    elif scheme == PORTAL_SCHEME:
        parts.append("**Authentication:** a portal session token from `POST /portal/api/login`.")
    elif operation.auth_note:
        parts.append(f"**Authentication:** {operation.auth_note}")
    return "\n\n".join(part for part in parts if part)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(title=app.title, version=app.version, routes=app.routes, tags=TAGS,
                       description=API_DESCRIPTION)
    components = spec.setdefault("components", {})
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    for model in (ErrorBody, OpenAIErrorBody):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(generated.pop("$defs", {}))
        schemas[str(generated["title"])] = generated
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path_format)
        if not isinstance(route, APIRoute) or not context.include_in_schema or path not in spec["paths"]:
            continue
        for method in sorted(m.lower() for m in context.methods or ()):
            spec_op = spec["paths"][path][method]
            operation = OPERATIONS.get((method.upper(), path))
            if operation is None:
                raise KeyError(f"{method.upper()} {path} has no entry in cortex.api_docs.operations")
            scheme, scope = route_auth(route, operation)
            spec_op["summary"] = operation.summary
            spec_op["description"] = _describe(operation, scheme, scope)
            spec_op["security"] = [{scheme: []}] if scheme else []
            if operation.example is not None and "requestBody" in spec_op:
                for media in spec_op["requestBody"]["content"].values():
                    media["example"] = operation.example
            responses = spec_op.setdefault("responses", {})
            for response in responses.values():
                if "text/event-stream" in response.get("content", {}):
                    response["content"]["text/event-stream"]["schema"] = SSE_EVENT
            openai = is_openai_path(path)
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(error_statuses(path, method, operation, scheme, spec_op) | declared):
                responses[str(status)] = _error_response(status, responses.get(str(status)), spec_op, openai)
            spec_op["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f'"#/components/schemas/{unused}"' not in _dumps(spec):
            del schemas[unused]
    components["schemas"] = dict(sorted(schemas.items()))
    return spec


def _dumps(spec: dict[str, Any]) -> str:
    return json.dumps(spec)


def install(app: FastAPI) -> None:
    """`app.openapi()` answers the contract (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


API_DESCRIPTION = """\
Cortex answers customer conversations for a company: `POST /v1/chat` per customer message, plus the
resources behind it (agents, actions, knowledge, customers and their memory, the semantic cache,
events and webhooks) and an OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`).

**Authentication.** Every `/v1` operation takes an API key as `Authorization: Bearer ctx_...`; each
operation's description names the scope it needs. A key sees only its own company: another company's
ids answer 404.

**Lists.** Every list takes `page` (from 1) and `page_size` (1-100) and answers
`{items, total_count, page, page_size, total_pages, has_more}`; `sort` (`field`, `field:asc` or
`field:desc`; each list documents its fields), `created_after` and `updated_after` (ISO 8601 with an
offset) filter and order it, so a tool can sync incrementally on `updated_at`.

**Errors** have the body `{"detail": ...}` (a message, or the failing fields for 422), except on the
OpenAI-compatible paths, which answer `{"error": {message, type, param, code}}`. A 429 carries
`Retry-After`.
"""

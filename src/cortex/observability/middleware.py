"""Two ASGI middlewares around every request.

`ObservabilityMiddleware` (outermost): the request id (accepted from `X-Request-ID` or made), returned
on every response and bound to the logs; one span per request; HTTP metrics by route template; one
access log line. `RateLimitMiddleware`: per key and per company limits on /v1, with the
`X-RateLimit-*` headers on every /v1 response and a 429 with `Retry-After` when exceeded.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from limits.errors import StorageError
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cortex.auth import api_keys
from cortex.auth.deps import authenticate_api_key
from cortex.kit.errors import Unauthorized, error_response
from cortex.observability.rate_limit import RATE_LIMITER, Check, RateLimiter
from cortex.observability.request_id import REQUEST_ID_HEADER, accept_or_new, current_request_id

if TYPE_CHECKING:
    from cortex.kit.runtime import Runtime

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("cortex.access")

UNMATCHED_ROUTE = "unmatched"


def _runtime(scope: Scope) -> Runtime | None:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "runtime", None)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/agents/{agent_id}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    # Not routed (refused before routing, e.g. a 429): the template the router would have chosen.
    app = scope.get("app")
    if app is None:
        return UNMATCHED_ROUTE
    templates: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "route_templates", None)
    if templates is None:
        templates = _compile_templates(app)
        app.state.route_templates = templates
    request_path = scope.get("path", "")
    return next((template for pattern, template in templates if pattern.match(request_path)), UNMATCHED_ROUTE)


def _compile_templates(app: ASGIApp) -> list[tuple[re.Pattern[str], str]]:
    openapi = getattr(app, "openapi", None)
    schema: dict[str, Any] = openapi() if callable(openapi) else {}
    paths = list(schema.get("paths", {}))
    # Static segments win over parameters, as they do for the router (`/v1/x/search` before `/v1/x/{id}`).
    paths.sort(key=lambda template: (template.count("{"), template))
    return [(compile_path(template)[0], template) for template in paths]


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = accept_or_new(request.headers.get(REQUEST_ID_HEADER))
        request.state.request_id = request_id  # kit.errors.request_id_of and the chat pipeline read it
        token = current_request_id.set(request_id)
        runtime = _runtime(scope)
        telemetry = runtime.telemetry if runtime is not None else None
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        method = scope["method"]
        route: str | None = None
        try:
            if telemetry is None:
                await self.app(scope, receive, send_with_id)
                return
            with telemetry.tracer.start_as_current_span(
                    f"HTTP {method}", kind=SpanKind.SERVER,
                    attributes={"http.request.method": method, "cortex.request_id": request_id}) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    route = route_template(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.route": route, "http.response.status_code": status})
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            route = route or route_template(scope)
            if telemetry is not None:
                telemetry.http_finished(method, route, status, duration_ms)
            access_logger.info("%s %s %s", method, route, status, extra={
                "request_id": request_id, "method": method, "route": route, "status": status,
                "duration_ms": round(duration_ms, 3)})
            current_request_id.reset(token)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        runtime = _runtime(scope)
        limiter: RateLimiter | None = runtime.components.get(RATE_LIMITER) if runtime is not None else None
        if scope["type"] != "http" or limiter is None or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        assert runtime is not None
        try:
            decision = await limiter.hit(await _checks(Request(scope), runtime))
        except StorageError as exc:
            # Redis down must not take the API down with it: serve unlimited (and say so) until it is back.
            logger.warning("rate limit storage unavailable; request not limited",
                           extra={"error_type": type(exc.storage_error).__name__})
            await self.app(scope, receive, send)
            return
        headers = decision.headers()
        if not decision.allowed:
            runtime.telemetry.rate_limited(decision.scope)
            body = {"detail": "rate limit exceeded", "scope": decision.scope, "limit": decision.limit,
                    "retry_after": decision.reset_seconds}
            response = error_response(path, 429, body, {**headers, "Retry-After": str(decision.reset_seconds)},
                                      code="rate_limit_exceeded")
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _checks(request: Request, runtime: Runtime) -> list[Check]:
    """A valid API key is limited per key and per company; anything else per client address."""
    settings = runtime.settings
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() == "bearer" and api_keys.looks_like_key(raw.strip()):
        try:
            # Sets request.state.principal, which the route's auth dependency then reuses.
            principal = await authenticate_api_key(request, runtime)
        except Unauthorized:
            pass  # answered 401 by the route; counted against the client address meanwhile
        else:
            return [
                Check("key", str(principal.key_id), principal.rate_limit_per_minute or settings.rate_limit_per_minute),
                Check("company", str(principal.company_id),
                      settings.company_rate_limit_per_minute or settings.rate_limit_per_minute),
            ]
    client = request.client.host if request.client else "unknown"
    return [Check("client", client, settings.rate_limit_per_minute)]

"""Mounts the portal on the app: its pages, its static files, and how its errors reach a browser."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cortex.kit.errors import CortexError, InvalidInput
from cortex.portal import (
    agent_pages,
    auth_pages,
    conversation_pages,
    customer_pages,
    key_pages,
    knowledge_pages,
    overview_pages,
)
from cortex.portal.rendering import HERE, page
from cortex.portal.web_session import PREFIX, CsrfRefused, LoginRequired, clear_session_cookie, login_url

ROUTERS = [auth_pages.router, overview_pages.router, conversation_pages.router, agent_pages.router,
           knowledge_pages.router, customer_pages.router, key_pages.router]

# Scripts and styles from this origin only: the pages carry no inline script, so an injected one
# would not run. uPlot and htmx set style attributes, hence 'unsafe-inline' for styles alone.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                           "form-action 'self'; base-uri 'none'")


def _is_page(path: str) -> bool:
    return path == PREFIX or (path.startswith(PREFIX + "/") and not path.startswith(PREFIX + "/api/"))


class PortalHeaders:
    """Security headers on the portal's pages. Plain ASGI, and every other path passes straight through:
    the API's responses (streams included) never go through a wrapper of this middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not _is_page(path):
            await self.app(scope, receive, send)
            return
        extra = [("Content-Security-Policy", CONTENT_SECURITY_POLICY), ("X-Content-Type-Options", "nosniff"),
                 ("Referrer-Policy", "same-origin")]
        if not path.startswith(PREFIX + "/static/"):
            extra.append(("Cache-Control", "no-store"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def mount_portal(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="portal-static")
    app.add_middleware(PortalHeaders)

    @app.get(PREFIX, include_in_schema=False)
    async def portal_root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = login_url(request.url.path if request.method == "GET" else None, exc.reason or None)
        if request.headers.get("hx-request"):
            response: Response = Response(status_code=204, headers={"HX-Redirect": target})
        else:
            response = RedirectResponse(target, status_code=303)
        clear_session_cookie(response, request)
        return response

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return page(request, "error.html", None, status_code=403, title="Request refused",
                    message="This request did not carry the page's security token (CSRF). Reload the page and "
                            "try again.")

    for error_type in (CortexError, InvalidInput, RequestValidationError):
        app.exception_handlers[error_type] = _as_page(app.exception_handlers[error_type])


def _problem(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, InvalidInput):
        return exc.status_code, f"{exc.field}: {exc.detail}" if exc.field else str(exc.detail)
    if isinstance(exc, CortexError):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:])
        return 422, f"{where}: {first.get('msg', 'invalid input')}" if where else str(first.get("msg", "invalid"))
    return 500, "internal error"


def _as_page(api_handler: Callable[..., Any]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A portal page answers a browser with a page; the API (and htmx fragments) keep their JSON errors."""

    async def handler(request: Request, exc: Exception) -> Response:
        if _is_page(request.url.path) and not request.headers.get("hx-request"):
            status_code, message = _problem(exc)
            return page(request, "error.html", None, status_code=status_code, title="Not possible", message=message)
        answered = api_handler(request, exc)
        return await answered if inspect.isawaitable(answered) else answered

    return handler

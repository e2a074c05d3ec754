"""The portal's browser session: the login JWT in a cookie, and the CSRF token that goes with it.

The cookie is httpOnly (no script reads the token), SameSite=Lax (other sites' forms do not carry it)
and Secure when the request came over HTTPS. Every state-changing request must also carry the CSRF
token, as a form field or the `X-CSRF-Token` header (htmx sends the header on each of its requests):
an HMAC of the session's id, so it changes with every login, needs no storage, and a page of another
origin cannot read it. The login form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.responses import Response

from cortex.auth.deps import check_portal_token
from cortex.auth.tokens import PortalClaims
from cortex.kit.deps import RuntimeDep
from cortex.kit.errors import Unauthorized

SESSION_COOKIE = "cortex_portal"
LOGIN_CSRF_COOKIE = "cortex_portal_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PREFIX = "/portal"


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page (an htmx request by `HX-Redirect`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token: 403."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in portal user of this request, and the CSRF token its pages embed."""

    claims: PortalClaims
    csrf_token: str

    @property
    def company_id(self) -> uuid.UUID:
        return self.claims.company_id

    @property
    def email(self) -> str:
        return self.claims.email


def csrf_token_for(secret: str, claims: PortalClaims) -> str:
    return hmac.new(secret.encode(), f"portal-csrf:{claims.session_id}".encode(), hashlib.sha256).hexdigest()


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str, max_age_seconds: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age_seconds, path=PREFIX, httponly=True,
                        secure=is_https(request), samesite="lax")


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, secure=is_https(request), samesite="lax")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, value, max_age=3600, path=PREFIX, httponly=True,
                        secure=is_https(request), samesite="lax")


def login_url(next_path: str | None = None, reason: str | None = None) -> str:
    query = []
    if next_path:
        query.append(f"next={quote(next_path, safe='/')}")
    if reason:
        query.append(f"reason={quote(reason)}")
    return f"{PREFIX}/login" + ("?" + "&".join(query) if query else "")


def safe_next(value: str | None) -> str:
    """Only a path inside the portal: a login link must not send the user to another site."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


async def current_viewer(request: Request, runtime: RuntimeDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired("")
    try:
        claims = await check_portal_token(runtime, token)
    except Unauthorized as exc:
        raise LoginRequired("Your session has ended. Log in again.") from exc
    viewer = Viewer(claims, csrf_token_for(runtime.settings.signing_secret, claims))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        await _require_csrf(request, viewer.csrf_token)
    return viewer


async def _require_csrf(request: Request, expected: str) -> None:
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        # Starlette caches the parsed form on the request, so the handler reads it again for free.
        field = (await request.form()).get(CSRF_FIELD)
        offered = field if isinstance(field, str) else None
    if not offered or not hmac.compare_digest(offered.encode(), expected.encode()):
        raise CsrfRefused()


# Every portal page and action depends on this: a live session, and for non-GET requests its CSRF token.
ViewerDep = Annotated[Viewer, Depends(current_viewer)]

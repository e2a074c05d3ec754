"""Log in and log out: the form posts email and password, the answer sets the session cookie."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from cortex.auth import service, sessions
from cortex.auth.tokens import PortalClaims, issue_token
from cortex.db.engine import after_commit
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.portal.rendering import page
from cortex.portal.web_session import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    CsrfRefused,
    ViewerDep,
    clear_session_cookie,
    new_login_csrf,
    safe_next,
    set_login_csrf_cookie,
    set_session_cookie,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _login_page(request: Request, *, next_path: str, error: str | None = None, email: str = "",
                status_code: int = 200) -> Response:
    token = new_login_csrf()
    response = page(request, "login.html", None, status_code=status_code, login_csrf=token, next_path=next_path,
                    error=error, email=email, reason=request.query_params.get("reason"))
    set_login_csrf_cookie(response, request, token)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=safe_next(next))


@router.post("/login")
async def login(request: Request, session: SessionDep, runtime: RuntimeDep,
                email: Annotated[str, Form(max_length=320)], password: Annotated[str, Form(max_length=1024)],
                csrf_token: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=2000)] = PREFIX + "/") -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        raise CsrfRefused()
    user = await service.authenticate_user(session, email.strip(), password)
    if user is None:
        return _login_page(request, next_path=safe_next(next), error="Wrong email or password.", email=email,
                           status_code=401)
    lifetime = timedelta(minutes=runtime.settings.jwt_expire_minutes)
    opened = await sessions.open_session(session, user, lifetime)
    token = issue_token(runtime.settings.signing_secret,
                        PortalClaims(user.id, user.company_id, user.email, opened.id), opened.created_at,
                        opened.expires_at)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, token, int(lifetime.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    await sessions.revoke_session(session, viewer.claims.session_id)
    cache_key = sessions.session_cache_key(viewer.claims.session_id)

    async def forget() -> None:
        await runtime.cache.delete(cache_key)

    after_commit(session, forget)
    response = RedirectResponse(PREFIX + "/login?reason=You+are+logged+out.", status_code=303)
    clear_session_cookie(response, request)
    return response

"""Portal login and API key management (portal JWT at /portal/api, API key at /v1/keys)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, status

from cortex.auth import service, sessions
from cortex.auth.deps import ApiPrincipal, KeysAuth, PortalUser, principal_cache_key
from cortex.auth.key_powers import KeyPowers
from cortex.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeyRevoked,
    LoginRequest,
    LoginResponse,
    PortalUserPublic,
)
from cortex.auth.tokens import PortalClaims, issue_token
from cortex.db.engine import after_commit
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import Unauthorized
from cortex.kit.pagination import ListParams, Page, list_query
from cortex.kit.runtime import Runtime

KeyPage = Annotated[ListParams, list_query(service.KEY_LISTING)]

portal_router = APIRouter(prefix="/portal/api", tags=["portal"])
keys_router = APIRouter(prefix="/v1/keys", tags=["keys"])


@portal_router.post("/login", response_model=LoginResponse)
async def login(body: LoginRequest, session: SessionDep, runtime: RuntimeDep) -> LoginResponse:
    user = await service.authenticate_user(session, body.email, body.password)
    if user is None:
        raise Unauthorized("invalid email or password")
    opened = await sessions.open_session(session, user, timedelta(minutes=runtime.settings.jwt_expire_minutes))
    claims = PortalClaims(user.id, user.company_id, user.email, opened.id)
    token = issue_token(runtime.settings.signing_secret, claims, opened.created_at, opened.expires_at)
    return LoginResponse(token=token, user=PortalUserPublic(id=user.id, email=user.email,
                                                            company_id=user.company_id))


@portal_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: PortalUser, session: SessionDep, runtime: RuntimeDep) -> None:
    await sessions.revoke_session(session, user.session_id)
    # After the commit: before it, a concurrent request could still read the session as live and
    # remember it again.
    after_commit(session, lambda: _forget(runtime, sessions.session_cache_key(user.session_id)))


async def _forget(runtime: Runtime, cache_key: str) -> None:
    await runtime.cache.delete(cache_key)


async def _revoke(runtime: RuntimeDep, session: SessionDep, company_id: uuid.UUID, key_id: uuid.UUID,
                  powers: KeyPowers | None = None) -> ApiKeyRevoked:
    key = await service.revoke_api_key(session, company_id, key_id, powers)
    after_commit(session, lambda: _forget(runtime, principal_cache_key(key.key_hash)))
    return ApiKeyRevoked(id=key.id, revoked=True)


@portal_router.post("/keys", response_model=ApiKeyCreated, status_code=status.HTTP_200_OK)
async def portal_create_key(body: ApiKeyCreate, user: PortalUser, session: SessionDep) -> ApiKeyCreated:
    return await service.create_api_key(session, user.company_id, body, created_by=user.user_id)


@portal_router.get("/keys", response_model=Page[ApiKeyPublic])
async def portal_list_keys(user: PortalUser, session: SessionDep, page: KeyPage) -> Page[ApiKeyPublic]:
    return await service.list_api_keys(session, user.company_id, page)


@portal_router.delete("/keys/{key_id}", response_model=ApiKeyRevoked)
async def portal_revoke_key(key_id: uuid.UUID, user: PortalUser, session: SessionDep,
                            runtime: RuntimeDep) -> ApiKeyRevoked:
    return await _revoke(runtime, session, user.company_id, key_id)


def _powers(principal: ApiPrincipal, runtime: RuntimeDep) -> KeyPowers:
    return KeyPowers.of(principal, runtime.settings.rate_limit_per_minute)


@keys_router.post("", response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, principal: KeysAuth, session: SessionDep,
                     runtime: RuntimeDep) -> ApiKeyCreated:
    terms = _powers(principal, runtime).terms_for(body, datetime.now(UTC))
    return await service.create_api_key(session, principal.company_id, body, terms=terms)


@keys_router.get("", response_model=Page[ApiKeyPublic])
async def list_keys(principal: KeysAuth, session: SessionDep, page: KeyPage) -> Page[ApiKeyPublic]:
    return await service.list_api_keys(session, principal.company_id, page)


@keys_router.delete("/{key_id}", response_model=ApiKeyRevoked)
async def revoke_key(key_id: uuid.UUID, principal: KeysAuth, session: SessionDep,
                     runtime: RuntimeDep) -> ApiKeyRevoked:
    return await _revoke(runtime, session, principal.company_id, key_id, _powers(principal, runtime))

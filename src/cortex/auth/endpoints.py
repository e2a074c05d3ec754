"""Portal login and API key management (portal JWT at /portal/api, API key at /v1/keys)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from cortex.auth import service
from cortex.auth.deps import KeysAuth, PortalUser, principal_cache_key
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
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import Forbidden, Unauthorized
from cortex.kit.pagination import Page, PageQuery

portal_router = APIRouter(prefix="/portal/api", tags=["portal"])
keys_router = APIRouter(prefix="/v1/keys", tags=["keys"])


@portal_router.post("/login", response_model=LoginResponse)
async def login(body: LoginRequest, session: SessionDep, runtime: RuntimeDep) -> LoginResponse:
    user = await service.authenticate_user(session, body.email, body.password)
    if user is None:
        raise Unauthorized("invalid email or password")
    claims = PortalClaims(user.id, user.company_id, user.email)
    token = issue_token(runtime.settings.signing_secret, claims, runtime.settings.jwt_expire_minutes)
    return LoginResponse(token=token, user=PortalUserPublic(id=user.id, email=user.email,
                                                            company_id=user.company_id))


async def _revoke(runtime: RuntimeDep, session: SessionDep, company_id: uuid.UUID,
                  key_id: uuid.UUID) -> ApiKeyRevoked:
    key = await service.revoke_api_key(session, company_id, key_id)
    await runtime.cache.delete(principal_cache_key(key.key_hash))
    return ApiKeyRevoked(id=key.id, revoked=True)


@portal_router.post("/keys", response_model=ApiKeyCreated, status_code=status.HTTP_200_OK)
async def portal_create_key(body: ApiKeyCreate, user: PortalUser, session: SessionDep) -> ApiKeyCreated:
    return await service.create_api_key(session, user.company_id, body, created_by=user.user_id)


@portal_router.get("/keys", response_model=Page[ApiKeyPublic])
async def portal_list_keys(user: PortalUser, session: SessionDep, page: PageQuery) -> Page[ApiKeyPublic]:
    return await service.list_api_keys(session, user.company_id, page)


@portal_router.delete("/keys/{key_id}", response_model=ApiKeyRevoked)
async def portal_revoke_key(key_id: uuid.UUID, user: PortalUser, session: SessionDep,
                            runtime: RuntimeDep) -> ApiKeyRevoked:
    return await _revoke(runtime, session, user.company_id, key_id)


@keys_router.post("", response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, principal: KeysAuth, session: SessionDep) -> ApiKeyCreated:
    # A key may mint keys only within its own powers, never a broader one.
    if "*" not in principal.scopes and not set(body.scopes) <= set(principal.scopes):
        raise Forbidden("a key cannot grant scopes it does not hold")
    return await service.create_api_key(session, principal.company_id, body)


@keys_router.get("", response_model=Page[ApiKeyPublic])
async def list_keys(principal: KeysAuth, session: SessionDep, page: PageQuery) -> Page[ApiKeyPublic]:
    return await service.list_api_keys(session, principal.company_id, page)


@keys_router.delete("/{key_id}", response_model=ApiKeyRevoked)
async def revoke_key(key_id: uuid.UUID, principal: KeysAuth, session: SessionDep,
                     runtime: RuntimeDep) -> ApiKeyRevoked:
    return await _revoke(runtime, session, principal.company_id, key_id)

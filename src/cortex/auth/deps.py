"""Authentication declared as dependencies: `Annotated` aliases per scope, and the portal user."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import update

from cortex.auth import api_keys
from cortex.auth.service import find_key_by_raw
from cortex.auth.sessions import SESSION_CHECK_TTL_SECONDS, session_cache_key, session_is_active
from cortex.auth.tokens import PortalClaims, read_token
from cortex.db.models import ApiKey
from cortex.kit.deps import RuntimeDep
from cortex.kit.errors import Forbidden, NotFound, Unauthorized
from cortex.kit.runtime import Runtime

# A verified key is remembered briefly so that each request does not cost a database round trip;
# revocation deletes the entry, so it still takes effect at once.
PRINCIPAL_TTL_SECONDS = 60


@dataclass(frozen=True)
class ApiPrincipal:
    key_id: uuid.UUID
    company_id: uuid.UUID
    scopes: tuple[str, ...]
    expires_at: datetime | None
    rate_limit_per_minute: int | None

    def require_company(self, company_id: uuid.UUID) -> None:
        """Another company's ids are answered as unknown, never as forbidden."""
        if company_id != self.company_id:
            raise NotFound("company not found")

    def to_json(self) -> str:
        return json.dumps({
            "key_id": str(self.key_id), "company_id": str(self.company_id), "scopes": list(self.scopes),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "rate_limit_per_minute": self.rate_limit_per_minute,
        })

    @classmethod
    def from_json(cls, raw: bytes) -> ApiPrincipal:
        data = json.loads(raw)
        return cls(uuid.UUID(data["key_id"]), uuid.UUID(data["company_id"]), tuple(data["scopes"]),
                   datetime.fromisoformat(data["expires_at"]) if data["expires_at"] else None,
                   data["rate_limit_per_minute"])


def principal_cache_key(key_hash: str) -> str:
    return f"cortex:apikey:{key_hash}"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def _load_principal(runtime: Runtime, raw_key: str) -> ApiPrincipal:
    key_hash = api_keys.hash_key(raw_key)
    cached = await runtime.cache.get(principal_cache_key(key_hash))
    if cached is not None:
        return ApiPrincipal.from_json(cached)
    async with runtime.database.session() as session:
        key = await find_key_by_raw(session, raw_key)
        if key is None or key.revoked_at is not None:
            raise Unauthorized("invalid API key")
        principal = ApiPrincipal(key.id, key.company_id, tuple(key.scopes), key.expires_at,
                                 key.rate_limit_per_minute)
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=datetime.now(UTC)))
    await runtime.cache.set(principal_cache_key(key_hash), principal.to_json(), PRINCIPAL_TTL_SECONDS)
    return principal


async def authenticate_api_key(request: Request, runtime: Runtime) -> ApiPrincipal:
    cached: ApiPrincipal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    raw = _bearer(request)
    if raw is None:
        raise Unauthorized("missing bearer API key")
    if not api_keys.looks_like_key(raw):
        raise Unauthorized("malformed API key")
    principal = await _load_principal(runtime, raw)
    if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
        raise Unauthorized("API key expired")
    request.state.principal = principal
    return principal


class ApiKeyAuth:
    """`Depends(ApiKeyAuth("agents"))`: a valid key of the caller's company holding that scope."""

    def __init__(self, scope: str) -> None:
        if scope not in api_keys.SCOPES:
            raise ValueError(f"unknown scope {scope}")
        self.scope = scope

    async def __call__(self, request: Request, runtime: RuntimeDep) -> ApiPrincipal:
        principal = await authenticate_api_key(request, runtime)
        if not api_keys.has_scope(list(principal.scopes), self.scope):
            raise Forbidden(f"this API key lacks the '{self.scope}' scope")
        return principal


ChatAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("chat"))]
AgentsAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("agents"))]
KnowledgeAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("knowledge"))]
MemoryAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("memory"))]
CacheAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("cache"))]
KeysAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("keys"))]
MetricsAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("metrics"))]
EventsAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("events"))]
WebhooksAuth = Annotated[ApiPrincipal, Depends(ApiKeyAuth("webhooks"))]


async def _session_is_active(runtime: Runtime, claims: PortalClaims) -> bool:
    cache_key = session_cache_key(claims.session_id)
    owner = f"{claims.user_id}:{claims.company_id}".encode()
    if await runtime.cache.get(cache_key) == owner:
        return True
    async with runtime.database.session() as session:
        active = await session_is_active(session, claims)
    if active:
        await runtime.cache.set(cache_key, owner, SESSION_CHECK_TTL_SECONDS)
    return active


async def check_portal_token(runtime: Runtime, token: str) -> PortalClaims:
    """The claims of a portal token whose session is live; the bearer header and the portal's cookie
    both carry one."""
    claims = read_token(runtime.settings.signing_secret, token)
    if claims is None:
        raise Unauthorized("invalid or expired token")
    if not await _session_is_active(runtime, claims):
        raise Unauthorized("session ended: log in again")
    return claims


async def portal_user(request: Request, runtime: RuntimeDep) -> PortalClaims:
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing bearer token")
    return await check_portal_token(runtime, token)


PortalUser = Annotated[PortalClaims, Depends(portal_user)]

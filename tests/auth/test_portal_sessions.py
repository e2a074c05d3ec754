"""Portal sessions are rows: a token is honoured only while its session, user and company exist."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from sqlalchemy import delete, update

from cortex.auth.sessions import session_cache_key
from cortex.auth.tokens import ALGORITHM
from cortex.db.models import Company, PortalSession, User
from cortex.kit.runtime import Runtime
from tests.support import Tenant


async def _login(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    response = await client.post("/portal/api/login", json={"email": tenant.user_email,
                                                            "password": tenant.password})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"token", "user"}
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _claims(headers: dict[str, str]) -> dict[str, Any]:
    token = headers["Authorization"].removeprefix("Bearer ")
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _sign(runtime: Runtime, claims: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, runtime.settings.signing_secret, algorithm=ALGORITHM)}"}


async def _portal_statuses(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    """Every portal endpoint behind the session, in turn."""
    return [
        (await client.get("/portal/api/keys", headers=headers)).status_code,
        (await client.post("/portal/api/keys", json={"name": "k"}, headers=headers)).status_code,
        (await client.delete(f"/portal/api/keys/{uuid.uuid4()}", headers=headers)).status_code,
        (await client.post("/portal/api/logout", headers=headers)).status_code,
    ]


async def test_a_deleted_users_token_is_refused(client: httpx.AsyncClient, tenant: Tenant,
                                                runtime: Runtime) -> None:
    headers = await _login(client, tenant)
    async with runtime.database.session() as session:
        await session.execute(delete(User).where(User.email == tenant.user_email))
    assert await _portal_statuses(client, headers) == [401, 401, 401, 401]


async def test_a_user_deleted_while_their_session_is_remembered_gets_401_not_500(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    headers = await _login(client, tenant)
    assert (await client.get("/portal/api/keys", headers=headers)).status_code == 200  # now remembered
    async with runtime.database.session() as session:
        await session.execute(delete(User).where(User.email == tenant.user_email))
    created = await client.post("/portal/api/keys", json={"name": "k"}, headers=headers)
    assert created.status_code == 401, created.text
    await runtime.cache.delete(session_cache_key(uuid.UUID(_claims(headers)["jti"])))
    assert (await client.get("/portal/api/keys", headers=headers)).status_code == 401


async def test_a_deleted_companys_token_gets_401_not_500(client: httpx.AsyncClient, tenant: Tenant,
                                                         runtime: Runtime) -> None:
    remembered = await _login(client, tenant)
    fresh = await _login(client, tenant)
    assert (await client.get("/portal/api/keys", headers=remembered)).status_code == 200
    async with runtime.database.session() as session:
        await session.execute(delete(Company).where(Company.id == tenant.company_id))
    for headers in (remembered, fresh):
        created = await client.post("/portal/api/keys", json={"name": "k"}, headers=headers)
        assert created.status_code == 401, created.text
    assert await _portal_statuses(client, fresh) == [401, 401, 401, 401]


async def test_tokens_missing_a_required_claim_or_expired_are_refused(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    genuine = _claims(await _login(client, tenant))
    now = datetime.now(UTC)
    assert (await client.get("/portal/api/keys", headers=_sign(runtime, genuine))).status_code == 200
    forged = [
        {k: v for k, v in genuine.items() if k != "exp"},
        {k: v for k, v in genuine.items() if k != "iat"},
        {k: v for k, v in genuine.items() if k != "jti"},
        {**genuine, "exp": now - timedelta(seconds=5)},
        {**genuine, "jti": str(uuid.uuid4())},  # signed, but no such session
        {**genuine, "jti": "not-a-uuid"},
        {**genuine, "sub": str(uuid.uuid4())},  # the session belongs to someone else
        {**genuine, "company_id": str(uuid.uuid4())},
    ]
    for claims in forged:
        response = await client.get("/portal/api/keys", headers=_sign(runtime, claims))
        assert response.status_code == 401, claims
        assert response.json()["detail"]


async def test_a_session_past_its_stored_expiry_is_refused(client: httpx.AsyncClient, tenant: Tenant,
                                                           runtime: Runtime) -> None:
    headers = await _login(client, tenant)
    session_id = uuid.UUID(_claims(headers)["jti"])
    async with runtime.database.session() as session:
        await session.execute(update(PortalSession).where(PortalSession.id == session_id)
                              .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await client.get("/portal/api/keys", headers=headers)).status_code == 401


async def test_logout_ends_that_session_and_no_other(client: httpx.AsyncClient, tenant: Tenant,
                                                    other_tenant: Tenant, runtime: Runtime) -> None:
    leaving = await _login(client, tenant)
    same_user_elsewhere = await _login(client, tenant)
    other_user = await _login(client, other_tenant)
    for headers in (leaving, same_user_elsewhere, other_user):
        assert (await client.get("/portal/api/keys", headers=headers)).status_code == 200  # all remembered

    logged_out = await client.post("/portal/api/logout", headers=leaving)
    assert logged_out.status_code == 204 and logged_out.content == b""
    assert await _portal_statuses(client, leaving) == [401, 401, 401, 401]
    # The database, not the cache, is what refuses it (it holds across restarts and workers).
    await runtime.cache.delete(session_cache_key(uuid.UUID(_claims(leaving)["jti"])))
    assert (await client.get("/portal/api/keys", headers=leaving)).status_code == 401

    for headers in (same_user_elsewhere, other_user):
        assert (await client.get("/portal/api/keys", headers=headers)).status_code == 200
    assert (await client.post("/portal/api/keys", json={"name": "k"}, headers=same_user_elsewhere)).status_code == 200
    assert (await client.post("/portal/api/logout")).status_code == 401

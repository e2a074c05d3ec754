from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update

from cortex.auth.api_keys import hash_key
from cortex.auth.deps import principal_cache_key
from cortex.db.models import ApiKey
from cortex.kit.runtime import Runtime
from tests.support import Tenant, make_key


async def _login(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post("/portal/api/login", json={"email": tenant.user_email,
                                                            "password": tenant.password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == tenant.user_email
    assert body["user"]["company_id"] == str(tenant.company_id)
    token: str = body["token"]
    return token


async def test_login_success_and_failures_look_alike(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _login(client, tenant)
    wrong = await client.post("/portal/api/login", json={"email": tenant.user_email, "password": "nope"})
    unknown = await client.post("/portal/api/login", json={"email": "ghost@example.com", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert (await client.post("/portal/api/login", json={"email": "x"})).status_code == 422


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post("/portal/api/login", json={"email": tenant.user_email.upper(),
                                                            "password": tenant.password})
    assert response.status_code == 200


async def test_portal_key_lifecycle(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    token = await _login(client, tenant)
    auth = {"Authorization": f"Bearer {token}"}
    created = await client.post("/portal/api/keys", json={"name": "backend", "scopes": ["chat"],
                                                          "expires_in_days": 30}, headers=auth)
    assert created.status_code == 200, created.text
    body = created.json()
    raw = body["key"]
    assert raw.startswith("ctx_") and len(raw) >= 36
    assert raw.startswith(body["key_prefix"])
    assert body["scopes"] == ["chat"] and body["name"] == "backend"
    assert body["expires_at"] is not None and body["created_at"] is not None

    # Only a hash is stored.
    async with runtime.database.session() as session:
        stored = await session.scalar(select(ApiKey).where(ApiKey.id == body["id"]))
        assert stored is not None and raw not in (stored.key_hash, stored.key_prefix)

    # The key works for its scope, and never for another.
    key_headers = {"Authorization": f"Bearer {raw}"}
    assert (await client.get("/v1/agents", headers=key_headers)).status_code == 403

    listed = await client.get("/portal/api/keys", headers=auth)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert any(k["id"] == body["id"] for k in items)
    assert all("key" not in k for k in items)
    assert "last_used_at" in items[0]

    deleted = await client.delete(f"/portal/api/keys/{body['id']}", headers=auth)
    assert deleted.status_code == 200
    assert (await client.delete(f"/portal/api/keys/{body['id']}", headers=auth)).status_code == 404


async def test_portal_key_validation(client: httpx.AsyncClient, tenant: Tenant) -> None:
    auth = {"Authorization": f"Bearer {await _login(client, tenant)}"}
    for body, field in (({"name": ""}, "name"), ({"name": "x" * 101}, "name"),
                        ({"name": "k", "expires_in_days": 0}, "expires_in_days"),
                        ({"name": "k", "expires_in_days": 366}, "expires_in_days"),
                        ({"name": "k", "scopes": ["root"]}, "scopes")):
        response = await client.post("/portal/api/keys", json=body, headers=auth)
        assert response.status_code == 422, body
        assert field in response.json()["detail"][0]["loc"]
    assert (await client.post("/portal/api/keys", json={"name": "k"})).status_code == 401
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert (await client.get("/portal/api/keys", headers=bad)).status_code == 401


async def test_api_key_rejections(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    assert (await client.get("/v1/agents")).status_code == 401
    for header in ("Bearer ", "Basic abc", "Bearer ctx_short", "Bearer ctx_" + "a" * 43, "Token " + tenant.api_key):
        response = await client.get("/v1/agents", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert "detail" in response.json()

    expiring = await make_key(runtime, tenant.company_id, ["*"], expires_in_days=1)
    headers = {"Authorization": f"Bearer {expiring}"}
    assert (await client.get("/v1/agents", headers=headers)).status_code == 200
    async with runtime.database.session() as session:
        await session.execute(update(ApiKey).where(ApiKey.key_prefix == expiring[:12])
                              .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    # The remembered principal carries the old expiry for up to a minute; drop it to prove the
    # database value is honoured on reload.
    await runtime.cache.delete(principal_cache_key(hash_key(expiring)))
    assert (await client.get("/v1/agents", headers=headers)).status_code == 401


async def test_revoked_key_stops_at_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post("/v1/keys", json={"name": "short-lived"}, headers=tenant.headers)
    assert created.status_code == 200
    raw, key_id = created.json()["key"], created.json()["id"]
    headers = {"Authorization": f"Bearer {raw}"}
    assert (await client.get("/v1/agents", headers=headers)).status_code == 200  # now remembered
    assert (await client.delete(f"/v1/keys/{key_id}", headers=tenant.headers)).status_code == 200
    assert (await client.get("/v1/agents", headers=headers)).status_code == 401


async def test_keys_cannot_grant_more_than_they_hold(client: httpx.AsyncClient, tenant: Tenant,
                                                     runtime: Runtime) -> None:
    limited = await make_key(runtime, tenant.company_id, ["keys", "chat"])
    headers = {"Authorization": f"Bearer {limited}"}
    assert (await client.post("/v1/keys", json={"name": "x", "scopes": ["*"]}, headers=headers)).status_code == 403
    ok = await client.post("/v1/keys", json={"name": "x", "scopes": ["chat"]}, headers=headers)
    assert ok.status_code == 200


async def test_last_used_at_is_recorded(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.get("/v1/agents", headers=tenant.headers)
    listed = (await client.get("/v1/keys", headers=tenant.headers)).json()["items"]
    assert any(k["last_used_at"] is not None for k in listed)

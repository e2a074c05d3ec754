"""An API key manages only keys within its own scopes, rate limit and lifetime; portal users manage all."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from cortex.auth.api_keys import hash_key
from cortex.db.models import ApiKey
from cortex.kit.runtime import Runtime
from tests.support import Tenant, make_key


async def _key_id(runtime: Runtime, raw: str) -> uuid.UUID:
    async with runtime.database.session() as session:
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(raw)))
    assert key_id is not None
    return key_id


def _bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


async def test_a_keys_key_cannot_revoke_a_broader_or_faster_key(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime) -> None:
    manager = await make_key(runtime, tenant.company_id, ["keys", "chat"], rate_limit_per_minute=50)
    headers = _bearer(manager)
    for scopes, limit in ((["*"], None), (["agents"], 20), (["chat"], None), (["chat"], 51)):
        target = await _key_id(runtime, await make_key(runtime, tenant.company_id, scopes,
                                                       rate_limit_per_minute=limit))
        refused = await client.delete(f"/v1/keys/{target}", headers=headers)
        assert refused.status_code == 403, (scopes, limit)
        assert "cannot revoke" in refused.json()["detail"]
    assert (await client.get("/v1/agents", headers=tenant.headers)).status_code == 200  # the `*` key lives

    within = await _key_id(runtime, await make_key(runtime, tenant.company_id, ["chat"], rate_limit_per_minute=50))
    assert (await client.delete(f"/v1/keys/{within}", headers=headers)).status_code == 200
    itself = await _key_id(runtime, manager)
    assert (await client.delete(f"/v1/keys/{itself}", headers=headers)).status_code == 200
    assert (await client.get("/v1/keys", headers=headers)).status_code == 401


async def test_a_keys_key_mints_only_within_its_scopes_and_limit(client: httpx.AsyncClient, tenant: Tenant,
                                                                 runtime: Runtime) -> None:
    headers = _bearer(await make_key(runtime, tenant.company_id, ["keys", "chat"], rate_limit_per_minute=50))
    for body in ({"name": "x", "scopes": ["*"]}, {"name": "x", "scopes": ["agents"]},
                 {"name": "x", "scopes": ["chat"], "rate_limit_per_minute": 51}):
        refused = await client.post("/v1/keys", json=body, headers=headers)
        assert refused.status_code == 403, body
        assert "cannot grant" in refused.json()["detail"]

    lower = await client.post("/v1/keys", json={"name": "x", "scopes": ["chat"], "rate_limit_per_minute": 10},
                              headers=headers)
    assert lower.status_code == 200 and lower.json()["rate_limit_per_minute"] == 10
    # Unstated, the limit is the creator's own, never the (higher) service default.
    unstated = await client.post("/v1/keys", json={"name": "x", "scopes": ["keys"]}, headers=headers)
    assert unstated.status_code == 200 and unstated.json()["rate_limit_per_minute"] == 50


async def test_a_key_without_its_own_limit_is_bound_by_the_default(client: httpx.AsyncClient, tenant: Tenant,
                                                                   runtime: Runtime) -> None:
    default = runtime.settings.rate_limit_per_minute
    over = await client.post("/v1/keys", json={"name": "x", "rate_limit_per_minute": default + 1},
                             headers=tenant.headers)
    assert over.status_code == 403
    at = await client.post("/v1/keys", json={"name": "x", "rate_limit_per_minute": default}, headers=tenant.headers)
    assert at.status_code == 200
    unstated = await client.post("/v1/keys", json={"name": "x"}, headers=tenant.headers)
    assert unstated.status_code == 200 and unstated.json()["rate_limit_per_minute"] is None


async def test_a_created_key_never_outlives_its_creator(client: httpx.AsyncClient, tenant: Tenant,
                                                        runtime: Runtime) -> None:
    headers = _bearer(await make_key(runtime, tenant.company_id, ["keys"], expires_in_days=2))
    async with runtime.database.session() as session:
        creator_expiry = await session.scalar(select(ApiKey.expires_at).where(ApiKey.company_id == tenant.company_id,
                                                                               ApiKey.expires_at.is_not(None)))
    assert creator_expiry is not None
    assert (await client.post("/v1/keys", json={"name": "x", "scopes": ["keys"], "expires_in_days": 3},
                              headers=headers)).status_code == 403
    for body in ({"name": "x", "scopes": ["keys"]}, {"name": "x", "scopes": ["keys"], "expires_in_days": 2}):
        created = await client.post("/v1/keys", json=body, headers=headers)
        assert created.status_code == 200, body
        assert datetime.fromisoformat(created.json()["expires_at"]) <= creator_expiry
    short = await client.post("/v1/keys", json={"name": "x", "scopes": ["keys"], "expires_in_days": 1},
                              headers=headers)
    assert datetime.fromisoformat(short.json()["expires_at"]) < creator_expiry - timedelta(hours=12)


async def test_portal_users_keep_full_power_over_their_keys(client: httpx.AsyncClient, tenant: Tenant,
                                                            runtime: Runtime) -> None:
    login = await client.post("/portal/api/login", json={"email": tenant.user_email, "password": tenant.password})
    portal = {"Authorization": f"Bearer {login.json()['token']}"}
    big = await client.post("/portal/api/keys", json={"name": "big", "rate_limit_per_minute": 1_000_000},
                            headers=portal)
    assert big.status_code == 200 and big.json()["rate_limit_per_minute"] == 1_000_000
    star = await _key_id(runtime, tenant.api_key)
    assert (await client.delete(f"/portal/api/keys/{star}", headers=portal)).status_code == 200

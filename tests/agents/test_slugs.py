"""Agent slugs: the `model` name of the OpenAI-compatible API, lowercase and unique per company."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import Tenant, create_agent


async def test_a_slug_is_saved_shown_changed_and_removed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant, slug="support-bot")
    assert agent["slug"] == "support-bot"
    assert (await client.get(f"/v1/agents/{agent['id']}", headers=tenant.headers)).json()["slug"] == "support-bot"
    changed = await client.patch(f"/v1/agents/{agent['id']}", json={"slug": "sales.v2"}, headers=tenant.headers)
    assert changed.status_code == 200 and changed.json()["slug"] == "sales.v2"
    # Renaming to its own slug is no conflict.
    same = await client.patch(f"/v1/agents/{agent['id']}", json={"slug": "sales.v2"}, headers=tenant.headers)
    assert same.status_code == 200
    cleared = await client.patch(f"/v1/agents/{agent['id']}", json={"slug": None}, headers=tenant.headers)
    assert cleared.status_code == 200 and cleared.json()["slug"] is None
    assert (await create_agent(client, tenant))["slug"] is None


async def test_a_duplicate_slug_is_409_within_a_company_only(client: httpx.AsyncClient, tenant: Tenant,
                                                             other_tenant: Tenant) -> None:
    first = await create_agent(client, tenant, slug="helpdesk")
    again = await client.post("/v1/agents", json={"name": "Two", "slug": "helpdesk"}, headers=tenant.headers)
    assert again.status_code == 409 and "helpdesk" in again.json()["detail"]
    second = await create_agent(client, tenant, slug="other")
    taken = await client.patch(f"/v1/agents/{second['id']}", json={"slug": "helpdesk"}, headers=tenant.headers)
    assert taken.status_code == 409
    assert (await create_agent(client, other_tenant, slug="helpdesk"))["slug"] == "helpdesk"
    assert first["slug"] == "helpdesk"


async def test_concurrent_creates_with_one_slug_give_one_agent_and_a_409(
        client: httpx.AsyncClient, tenant: Tenant) -> None:
    responses = await asyncio.gather(*(
        client.post("/v1/agents", json={"name": f"Racer {i}", "slug": "racer"}, headers=tenant.headers)
        for i in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]


async def test_invalid_slugs_are_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for slug in ("Upper", "-dash-first", "with space", "x" * 65, "", "0b9a3d0e-7b1c-4c55-9d4a-6f7e8a9b0c1d"):
        response = await client.post("/v1/agents", json={"name": "Bad", "slug": slug}, headers=tenant.headers)
        assert response.status_code == 422, slug
        assert response.json()["detail"][0]["loc"] == ["body", "slug"]

"""Input the database would refuse is a clear 4xx, never a 500: text PostgreSQL cannot store (NUL, unpaired
surrogates) is a 422 naming the field; nulls in updates; an update racing a delete."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.customers import service as customers
from cortex.db.models import Customer
from cortex.kit.runtime import Runtime
from tests.knowledge.test_ingestion import make_source
from tests.memory.conftest import view
from tests.support import Tenant, create_action


def _locs(response: httpx.Response) -> list[list[str | int]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


async def test_json_fields_path_and_query_are_checked_before_anything_runs(client: httpx.AsyncClient,
                                                                           tenant: Tenant) -> None:
    company = str(tenant.company_id)
    saved = await client.post("/v1/memory/cust-t/save", headers=tenant.headers,
                              json={"company_id": company, "fact": "Likes \x00 tea"})
    assert _locs(saved) == [["body", "fact"]]
    assert (await view(client, tenant, "cust-t"))["fact_count"] == 0  # nothing stored
    # An unpaired surrogate can only arrive as a JSON escape.
    created = await client.post("/v1/customers", headers={**tenant.headers, "Content-Type": "application/json"},
                                content=json.dumps({"customer_id": "c-1", "segments": ["vip", "\ud800"]}))
    assert _locs(created) == [["body", "segments", 1]]
    nested = await client.post("/v1/agents", headers=tenant.headers, json={
        "name": "Agent", "faqs": [{"question": "Hours?", "answer": "9\x00-5"}]})
    assert _locs(nested) == [["body", "faqs", 0, "answer"]]
    assert _locs(await client.delete(f"/v1/memory/a%00b?company_id={company}", headers=tenant.headers)) == [["path"]]
    listed = await client.get("/v1/conversations?customer_id=x%00&agent_id=", headers=tenant.headers)
    assert _locs(listed) == [["query", "customer_id"]]
    fine = await client.post("/v1/memory/cust-t/save", headers=tenant.headers,
                             json={"company_id": company, "fact": "Likes mint tea 🍵 (شاي بالنعناع)"})
    assert fine.status_code == 200


async def test_a_form_field_the_guard_cannot_read_is_still_a_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    source = await make_source(client, tenant)
    response = await client.post(f"/v1/knowledge/sources/{source['id']}/files", headers=tenant.headers,
                                 files={"file": ("a.md", b"# Hours\n\nWe open at nine.\n", "text/markdown")},
                                 data={"user_id": "u\x00"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == "text must not contain NUL characters or unpaired surrogates"


async def test_null_in_an_update_leaves_required_fields_and_clears_optional_ones(client: httpx.AsyncClient,
                                                                                 tenant: Tenant) -> None:
    action = await create_action(client, tenant, webhook_url="https://hooks.example.com/a", method="GET",
                                 rate_limit={"max_calls": 5, "window_seconds": 60})
    response = await client.patch(f"/v1/actions/{action['id']}", headers=tenant.headers, json={
        "auth_type": None, "method": None, "parameters_schema": None, "query_schema": None, "source_type": None,
        "rate_limit": None, "name": None})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["auth_type"], body["method"], body["name"]) == ("none", "GET", action["name"])
    assert body["rate_limit"] is None
    customer = await client.post("/v1/customers", headers=tenant.headers, json={
        "customer_id": f"c-{uuid.uuid4().hex[:6]}", "metadata": {"tier": "gold"}, "segments": ["vip"]})
    assert customer.status_code == 201, customer.text
    cleared = await client.patch(f"/v1/customers/{customer.json()['id']}", headers=tenant.headers,
                                 json={"metadata": None, "segments": None, "first_name": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["metadata"], cleared.json()["segments"]) == ({}, [])


async def test_an_update_racing_a_delete_is_a_409_not_a_500(client: httpx.AsyncClient, tenant: Tenant,
                                                             runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    created = await client.post("/v1/customers", headers=tenant.headers, json={"customer_id": "racing"})
    assert created.status_code == 201, created.text
    loaded = customers.get_customer

    async def loaded_then_deleted_elsewhere(session: AsyncSession, company_id: uuid.UUID, ref: str) -> Customer:
        customer = await loaded(session, company_id, ref)
        async with runtime.database.session() as other:  # another request's DELETE commits in between
            await other.execute(delete(Customer).where(Customer.id == customer.id))
        return customer

    monkeypatch.setattr(customers, "get_customer", loaded_then_deleted_elsewhere)
    response = await client.patch(f"/v1/customers/{created.json()['id']}", headers=tenant.headers,
                                  json={"first_name": "Lina"})
    assert response.status_code == 409, response.text


async def test_guard_refusals_take_openais_shape_on_its_paths(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """The text guard and the body limit answer before routing; on /v1/chat/completions they must still
    answer as the schema says: `{"error": {...}}` (schemathesis' response check found the Cortex shape)."""
    refused = await client.post("/v1/chat/completions", headers=tenant.headers, json={
        "model": "any", "messages": [{"role": "user", "content": "hi\x00"}]})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["param"] == "messages.0.content" and error["type"] == "invalid_request_error"
    too_big = await client.post("/v1/chat/completions", headers={**tenant.headers, "Content-Type": "application/json"},
                                content=b'{"model": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert too_big.status_code == 413 and too_big.json()["error"]["message"]

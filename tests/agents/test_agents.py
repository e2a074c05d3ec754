from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cortex.db.models import ActionDefinition
from cortex.kit.runtime import Runtime
from tests.support import Tenant, create_agent, make_key

ACTION = {
    "name": "lookup_order",
    "description": "Look up an order by its number",
    "source_type": "action",
    "webhook_url": "https://shop.example.com/orders",
    "method": "GET",
    "headers": {"X-Shop": "demo"},
    "auth_type": "bearer",
    "auth_credentials": {"token": "super-secret-token"},
    "parameters_schema": {"type": "object", "properties": {"order_id": {"type": "string"}},
                          "required": ["order_id"]},
    "path_template": "/orders/{order_id}",
    "query_schema": {"type": "object", "properties": {"verbose": {"type": "boolean"}}},
    "rate_limit": {"max_calls": 5, "window_seconds": 60},
}


async def _action(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/actions", json={**ACTION, **overrides}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def _source(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.post("/v1/knowledge/sources", json={"name": "Manual"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_agent_crud_and_config(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    action = await _action(client, tenant)
    assert "auth_credentials" not in action and action["has_credentials"] is True
    source = await _source(client, tenant)
    agent = await create_agent(
        client, tenant, system_prompt="You are {{ personality.name }}.",
        personality={"name": "Sara", "traits": ["warm"]}, dialect={"name": "Gulf Arabic", "primary_language": "ar"},
        faqs=[{"question": "Hours?", "answer": "9-5"}], scenarios=[{"name": "refund", "steps": ["ask id"]}],
        settings={"temperature": 0.2, "tier_models": {"nano": "openai/gpt-4o-mini"}},
        action_ids=[action["id"]], knowledge_source_ids=[source["id"]],
    )
    assert agent["company_id"] == str(tenant.company_id)
    assert agent["action_ids"] == [action["id"]] and agent["knowledge_source_ids"] == [source["id"]]
    assert agent["personality"]["id"]

    got = await client.get(f"/v1/agents/{agent['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json()["name"] == agent["name"]

    config = await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)
    assert config.status_code == 200 and config.headers["X-Config-Cache"] == "miss"
    body = config.json()
    assert set(body) >= {"id", "company_id", "name", "personality", "dialect", "system_prompt", "faqs",
                         "scenarios", "knowledge_source_ids", "action_definitions", "workflow_faqs", "settings"}
    assert body["personality"]["name"] == "Sara" and body["dialect"]["primary_language"] == "ar"
    assert body["action_definitions"][0]["name"] == "lookup_order"
    assert "super-secret-token" not in config.text and "auth_credentials" not in config.text
    again = await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)
    assert again.headers["X-Config-Cache"] == "hit"

    # An update is visible at once, and bumps the configuration version.
    patched = await client.patch(f"/v1/agents/{agent['id']}", json={"system_prompt": "New prompt"},
                                 headers=tenant.headers)
    assert patched.status_code == 200 and patched.json()["config_version"] == agent["config_version"] + 1
    fresh = await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)
    assert fresh.headers["X-Config-Cache"] == "miss" and fresh.json()["system_prompt"] == "New prompt"

    # Changing a linked action invalidates the configs that show it.
    await client.patch(f"/v1/actions/{action['id']}", json={"description": "Changed"}, headers=tenant.headers)
    shown = await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)
    assert shown.json()["action_definitions"][0]["description"] == "Changed"

    deleted = await client.delete(f"/v1/agents/{agent['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"/v1/agents/{agent['id']}", headers=tenant.headers)).status_code == 404


async def test_credentials_are_encrypted_at_rest(client: httpx.AsyncClient, tenant: Tenant,
                                                 runtime: Runtime) -> None:
    action = await _action(client, tenant, name="encrypted_one")
    async with runtime.database.session() as session:
        stored = await session.scalar(select(ActionDefinition).where(ActionDefinition.id == action["id"]))
        assert stored is not None and stored.auth_credentials_encrypted
        assert "super-secret-token" not in stored.auth_credentials_encrypted
        assert runtime.secrets.decrypt_json(stored.auth_credentials_encrypted) == {"token": "super-secret-token"}


async def test_validation_errors_name_the_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/agents", {"name": ""}, "name"),
        ("/v1/agents", {"name": "a", "settings": {"temperature": 5}}, "temperature"),
        ("/v1/agents", {"name": "a", "settings": {"unknown": 1}}, "unknown"),
        ("/v1/agents", {"name": "a", "faqs": [{"question": "q"}]}, "answer"),
        ("/v1/agents", {"name": "a", "action_ids": ["not-a-uuid"]}, "action_ids"),
        ("/v1/agents", {"name": "a", "action_ids": [str(uuid.uuid4())]}, "action_ids"),
        ("/v1/agents", {"name": "a", "settings": {"cache": {"never_cache_patterns": ["("]}}},
         "never_cache_patterns"),
        ("/v1/actions", {**ACTION, "name": "has space"}, "name"),
        ("/v1/actions", {**ACTION, "webhook_url": "ftp://x"}, "webhook_url"),
        ("/v1/actions", {**ACTION, "auth_type": "basic", "auth_credentials": {"username": "u"}}, "body"),
        ("/v1/actions", {**ACTION, "parameters_schema": {"type": 12}}, "parameters_schema"),
        ("/v1/actions", {**ACTION, "rate_limit": {"max_calls": 0, "window_seconds": 1}}, "max_calls"),
        ("/v1/knowledge/sources", {"name": "s", "embedding_model": "word2vec"}, "embedding_model"),
        ("/v1/customers", {"customer_id": "c", "email": "not-an-email"}, "email"),
    ]
    for path, body, field in cases:
        response = await client.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (path, body, response.text)
        locs = [part for err in response.json()["detail"] for part in err["loc"]]
        assert field in locs, (path, body, response.json())
    for raw in ("not json", "[1,2]", "null"):
        response = await client.post("/v1/agents", content=raw, headers={**tenant.headers,
                                                                         "Content-Type": "application/json"})
        assert response.status_code == 422, raw
    assert (await client.get("/v1/agents/not-a-uuid", headers=tenant.headers)).status_code == 422
    assert (await client.get("/v1/agents?page=0", headers=tenant.headers)).status_code == 422
    assert (await client.get("/v1/agents?page_size=101", headers=tenant.headers)).status_code == 422


@pytest.fixture
async def private_refused(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    """CORTEX_ALLOW_PRIVATE_WEBHOOKS off for one test (the suite's webhook targets need it on), and a
    resolver stub: a few names answer made-up addresses, no other name resolves, no query is sent.
    Yields the names looked up."""
    answers = {"metadata.test": "100.100.100.200", "cgnat.test": "100.64.0.1", "six.test": "2002:7f00:1::1",
               "shop.test": "93.184.215.14"}
    asked: list[str] = []

    async def stub(host: str, port: int, **kwargs: Any) -> list[Any]:
        asked.append(host)
        address = answers.get(host, host)
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "unknown in this test") from None
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", stub)
    runtime.settings.allow_private_webhooks = False
    try:
        yield asked
    finally:
        runtime.settings.allow_private_webhooks = True


async def test_an_action_aimed_at_a_private_address_is_refused_when_saved(
        client: httpx.AsyncClient, tenant: Tenant, private_refused: list[str]) -> None:
    for url in ("http://metadata.test/latest/meta-data", "http://cgnat.test/", "http://six.test/",
                "http://127.0.0.1:8080/hook", "http://[::ffff:10.0.0.1]/", "http://169.254.169.254/",
                "http://192.0.0.8/"):
        response = await client.post("/v1/actions", json={**ACTION, "name": "a" + uuid.uuid4().hex[:8],
                                                          "webhook_url": url}, headers=tenant.headers)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "webhook_url"], url
    oauth = {**ACTION, "name": "oauth", "auth_type": "oauth2", "webhook_url": "https://shop.test/orders",
             "auth_credentials": {"token_url": "http://metadata.test/token", "client_id": "c", "client_secret": "s"}}
    response = await client.post("/v1/actions", json=oauth, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "auth_credentials", "token_url"]
    # Public, or not resolvable yet (every call resolves and vets it again): saved.
    action = await _action(client, tenant, webhook_url="https://shop.test/orders")
    await _action(client, tenant, name="later", webhook_url="https://not-yet-in-dns.test/hook")
    response = await client.patch(f"/v1/actions/{action['id']}", json={"webhook_url": "http://metadata.test/"},
                                  headers=tenant.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "webhook_url"]
    response = await client.patch(f"/v1/actions/{action['id']}", headers=tenant.headers,
                                  json={"auth_type": "oauth2", "auth_credentials": oauth["auth_credentials"]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "auth_credentials", "token_url"]
    stored = (await client.get(f"/v1/actions/{action['id']}", headers=tenant.headers)).json()
    assert stored["webhook_url"] == "https://shop.test/orders" and stored["auth_type"] == "bearer"
    assert "metadata.test" in private_refused


async def test_private_action_urls_are_saved_when_allowed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    action = await _action(client, tenant, webhook_url="http://127.0.0.1:9/hook")  # the suite allows them
    response = await client.patch(f"/v1/actions/{action['id']}", json={"webhook_url": "http://10.0.0.1/x"},
                                  headers=tenant.headers)
    assert response.status_code == 200 and response.json()["webhook_url"] == "http://10.0.0.1/x"


async def test_duplicate_action_name_is_a_conflict(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _action(client, tenant, name="dup")
    response = await client.post("/v1/actions", json={**ACTION, "name": "dup"}, headers=tenant.headers)
    assert response.status_code == 409


async def test_pagination_counts_everything(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for _ in range(5):
        await create_agent(client, tenant)
    page = (await client.get("/v1/agents?page=2&page_size=2", headers=tenant.headers)).json()
    assert page["total_count"] == 5 and page["page"] == 2 and page["page_size"] == 2
    assert len(page["items"]) == 2 and page["total_pages"] == 3 and page["has_more"] is True
    last = (await client.get("/v1/agents?page=3&page_size=2", headers=tenant.headers)).json()
    assert len(last["items"]) == 1 and last["total_count"] == 5
    assert last["total_pages"] == 3 and last["has_more"] is False
    beyond = (await client.get("/v1/agents?page=4&page_size=2", headers=tenant.headers)).json()
    assert beyond["items"] == [] and beyond["has_more"] is False


async def test_scopes(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    chat_only = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['chat'])}"}
    for path in ("/v1/agents", "/v1/actions", "/v1/knowledge/sources", "/v1/customers", "/v1/keys"):
        response = await client.get(path, headers=chat_only)
        assert response.status_code == 403, path
    agents_key = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['agents'])}"}
    assert (await client.get("/v1/agents", headers=agents_key)).status_code == 200
    assert (await client.get("/v1/knowledge/sources", headers=agents_key)).status_code == 403


async def test_customers_crud(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {"customer_id": "cust-42", "first_name": "Lina", "email": "lina@example.com",
            "segments": ["vip"], "metadata": {"tier": "gold"}}
    created = await client.post("/v1/customers", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    assert (await client.post("/v1/customers", json=body, headers=tenant.headers)).status_code == 409
    by_ref = await client.get("/v1/customers/cust-42", headers=tenant.headers)
    by_id = await client.get(f"/v1/customers/{created.json()['id']}", headers=tenant.headers)
    assert by_ref.json() == by_id.json()
    patched = await client.patch("/v1/customers/cust-42", json={"last_name": "Haddad"}, headers=tenant.headers)
    assert patched.json()["last_name"] == "Haddad" and patched.json()["first_name"] == "Lina"
    assert (await client.delete("/v1/customers/cust-42", headers=tenant.headers)).status_code == 204
    assert (await client.get("/v1/customers/cust-42", headers=tenant.headers)).status_code == 404


async def test_knowledge_source_crud(client: httpx.AsyncClient, tenant: Tenant) -> None:
    source = await _source(client, tenant)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    patched = await client.patch(f"/v1/knowledge/sources/{source['id']}", json={"description": "d"},
                                 headers=tenant.headers)
    assert patched.status_code == 200 and patched.json()["description"] == "d"
    assert (await client.delete(f"/v1/knowledge/sources/{source['id']}", headers=tenant.headers)).status_code == 204
    after = (await client.get(f"/v1/agents/{agent['id']}", headers=tenant.headers)).json()
    assert after["knowledge_source_ids"] == []
    assert after["knowledge_version"] == agent["knowledge_version"] + 1

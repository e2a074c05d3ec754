"""The event outbox as the API shows it: what a chat writes, the list's filters, isolation, and every new route's
401 / 403 / 404 / 422."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from cortex.conversations.store import ReplyRecord
from cortex.conversations.turn_events import handoff_reason
from cortex.events import outbox
from cortex.kit.runtime import Runtime
from cortex.llm import offline
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent, make_key
from tests.webhook_target import WebhookTarget


async def events_of(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params={"page_size": 100, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_chat_turn_writes_its_events(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                             llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation_id = uuid.uuid4()
    for text in ("hello there", "and again"):
        response = await chat(client, tenant, agent["id"], text, conversation_id=conversation_id)
        assert response.status_code == 200, response.text
    events = await events_of(client, tenant)
    types = [e["type"] for e in events if e["type"] != "api_key.created"]
    assert types == ["conversation.created", "message.received", "message.replied",
                     "message.received", "message.replied"]
    replied = next(e for e in events if e["type"] == "message.replied")
    assert replied["company_id"] == str(tenant.company_id)
    assert replied["data"]["conversation_id"] == str(conversation_id)
    assert {"model", "cached", "cost_usd", "latency_ms", "content"} <= set(replied["data"])
    assert replied["data"]["cached"] is False
    received = next(e for e in events if e["type"] == "message.received")
    assert received["data"]["content"] == "hello there"
    created = next(e for e in events if e["type"] == "conversation.created")
    assert "content" not in created["data"]
    # Filters: by type (repeated or comma-separated), and after an event.
    only = await events_of(client, tenant, type="message.replied,conversation.created")
    assert [e["type"] for e in only] == ["conversation.created", "message.replied", "message.replied"]
    after = await events_of(client, tenant, after=created["id"])
    assert [e["id"] for e in after] == [e["id"] for e in events[events.index(created) + 1:]]
    # Another company sees none of it, and cannot page from its ids.
    assert all(e["company_id"] == str(other_tenant.company_id) for e in await events_of(client, other_tenant))
    assert not [e for e in await events_of(client, other_tenant) if e["type"].startswith("message.")]
    theirs = await client.get("/v1/events", params={"after": created["id"]}, headers=other_tenant.headers)
    assert theirs.status_code == 404


async def test_a_failed_turn_writes_message_failed(client: httpx.AsyncClient, tenant: Tenant,
                                                   llm: ScriptedLLM) -> None:
    from tests.scripted_llm import Reply

    agent = await create_agent(client, tenant)
    llm.script = lambda request: Reply(status=500, text="upstream broke")
    response = await chat(client, tenant, agent["id"], "will this work?")
    assert response.status_code >= 500
    failed = await events_of(client, tenant, type="message.failed")
    assert len(failed) == 1 and "request" in failed[0]["data"]["error"]


def test_a_hand_off_is_the_offline_dont_know_or_a_hand_off_action() -> None:
    def record(content: str, model: str, calls: list[dict[str, Any]]) -> ReplyRecord:
        return ReplyRecord(content=content, model_used=model, tier=None, tier_reason=None, tokens_input=0,
                           tokens_output=0, cost_usd=0.0, latency_ms=1.0, step_timings={}, context_tokens={},
                           actions_executed=[], tool_calls=calls, tool_rounds=0, cached=False,
                           cache_similarity=None, cache_entry_id=None, config_cache_hit=None, llm_latency_ms=None)

    assert handoff_reason(record(offline.dont_know("fr"), offline.MODEL_NAME, [])) == {"reason": "no_answer"}
    assert handoff_reason(record("Our hours are 9-5.", offline.MODEL_NAME, [])) is None
    called = record("Connecting you.", "openai/x", [{"name": "human_handoff", "outcome": "ok"}])
    assert handoff_reason(called) == {"reason": "action", "action": "human_handoff"}
    assert handoff_reason(record("Done.", "openai/x", [{"name": "lookup_order", "outcome": "ok"}])) is None


async def test_api_keys_and_cache_flushes_are_events(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post("/v1/keys", json={"name": "ops", "scopes": ["events"]}, headers=tenant.headers)
    key_id = created.json()["id"]
    assert (await client.delete(f"/v1/keys/{key_id}", headers=tenant.headers)).status_code == 200
    flushed = await client.delete("/v1/cache/flush", params={"company_id": str(tenant.company_id)},
                                  headers=tenant.headers)
    assert flushed.status_code == 200, flushed.text
    events = await events_of(client, tenant)
    by_type = {e["type"]: e for e in events}
    assert [e["data"]["key_id"] for e in events if e["type"] == "api_key.created"][-1] == key_id
    assert by_type["api_key.revoked"]["data"]["key_id"] == key_id
    assert by_type["cache.flushed"]["data"] == {"agent_id": None, "entries_deleted": 0}


async def test_forgetting_a_customer_deletes_their_events(client: httpx.AsyncClient, tenant: Tenant,
                                                          llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    await chat(client, tenant, agent["id"], "my secret words", customer_id="cust-forget")
    await chat(client, tenant, agent["id"], "someone else", customer_id="cust-stays")
    forgotten = await client.delete("/v1/memory/cust-forget", params={"company_id": str(tenant.company_id)},
                                    headers=tenant.headers)
    assert forgotten.status_code == 200, forgotten.text
    events = await events_of(client, tenant)
    assert not [e for e in events if e["data"].get("customer_id") == "cust-forget"]
    assert [e for e in events if e["data"].get("customer_id") == "cust-stays"]
    [gone] = [e for e in events if e["type"] == "customer.forgotten"]
    assert "customer_id" not in gone["data"] and gone["data"]["messages_deleted"] == 2


async def test_old_events_are_pruned(runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant) -> None:
    from sqlalchemy import text

    from cortex.events import repository

    async with runtime.database.session() as session:
        old = await outbox.record(session, tenant.company_id, "cache.flushed", {"entries_deleted": 1})
        await session.execute(text("UPDATE events SET created_at = now() - interval '31 days' WHERE id = :id"),
                              {"id": old})
        fresh = await outbox.record(session, tenant.company_id, "cache.flushed", {"entries_deleted": 2})
    async with runtime.database.session() as session:
        assert await repository.prune(session, runtime.settings.events_retention_days) >= 1
    ids = [e["id"] for e in await events_of(client, tenant)]
    assert str(fresh) in ids and str(old) not in ids


# --- every new route: 401, 403, 404 across companies, 422 ------------------------------------------------------

ROUTES = [
    ("GET", "/v1/events", "events"),
    ("POST", "/v1/events/stream-token", "events"),
    ("GET", "/v1/events/stream", "events"),
    ("POST", "/v1/webhooks", "webhooks"),
    ("GET", "/v1/webhooks", "webhooks"),
    ("GET", "/v1/webhooks/{id}", "webhooks"),
    ("PATCH", "/v1/webhooks/{id}", "webhooks"),
    ("DELETE", "/v1/webhooks/{id}", "webhooks"),
    ("POST", "/v1/webhooks/{id}/rotate-secret", "webhooks"),
    ("POST", "/v1/webhooks/{id}/test", "webhooks"),
    ("GET", "/v1/webhooks/{id}/deliveries", "webhooks"),
    ("POST", "/v1/webhooks/{id}/deliveries/{delivery}/redeliver", "webhooks"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
async def test_every_route_needs_a_key_with_its_scope(client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant,
                                                      method: str, path: str, scope: str) -> None:
    url = path.format(id=uuid.uuid4(), delivery=uuid.uuid4())
    body = {"url": "http://127.0.0.1:9/x"} if method in ("POST", "PATCH") else None
    assert (await client.request(method, url, json=body)).status_code == 401
    other_scope = "webhooks" if scope == "events" else "events"
    key = await make_key(runtime, tenant.company_id, [other_scope])
    denied = await client.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"})
    assert denied.status_code == 403, denied.text


async def test_another_companys_webhook_is_not_found(client: httpx.AsyncClient, tenant: Tenant,
                                                     other_tenant: Tenant, webhooks: WebhookTarget) -> None:
    from tests.events.conftest import create_webhook

    hook = await create_webhook(client, tenant, webhooks)
    test = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
    delivery = test.json()["id"]
    for method, path in [("GET", "/v1/webhooks/{id}"), ("PATCH", "/v1/webhooks/{id}"),
                         ("DELETE", "/v1/webhooks/{id}"), ("POST", "/v1/webhooks/{id}/rotate-secret"),
                         ("POST", "/v1/webhooks/{id}/test"), ("GET", "/v1/webhooks/{id}/deliveries"),
                         ("POST", "/v1/webhooks/{id}/deliveries/{delivery}/redeliver")]:
        url = path.format(id=hook["id"], delivery=delivery)
        response = await client.request(method, url, json={} if method == "PATCH" else None,
                                        headers=other_tenant.headers)
        assert response.status_code == 404, (method, path, response.text)
    listed = await client.get("/v1/webhooks", headers=other_tenant.headers)
    assert listed.json()["total_count"] == 0
    # Nothing of it changed.
    assert (await client.get(f"/v1/webhooks/{hook['id']}", headers=tenant.headers)).json()["url"] == hook["url"]


@pytest.mark.parametrize("body", [
    {}, {"url": "ftp://example.com/x"}, {"url": "http://127.0.0.1:9/x", "event_types": ["no.such.type"]},
    {"url": "http://127.0.0.1:9/x", "event_types": []}, {"url": "http://127.0.0.1:9/x", "secret": "mine"},
    {"url": "http://127.0.0.1:9/x", "description": "x" * 501}, {"url": "http://127.0.0.1:9/x", "enabled": "maybe"},
    {"url": "http://[::1/x"},
])
async def test_a_bad_webhook_body_is_a_422(client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> None:
    response = await client.post("/v1/webhooks", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text


async def test_bad_parameters_are_422s(client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget) -> None:
    from tests.events.conftest import create_webhook

    assert (await client.get("/v1/events", params={"type": "nope"}, headers=tenant.headers)).status_code == 422
    assert (await client.get("/v1/events", params={"after": "x"}, headers=tenant.headers)).status_code == 422
    assert (await client.get("/v1/events", params={"page_size": 0}, headers=tenant.headers)).status_code == 422
    assert (await client.get("/v1/webhooks/not-a-uuid", headers=tenant.headers)).status_code == 422
    hook = await create_webhook(client, tenant, webhooks)
    patched = await client.patch(f"/v1/webhooks/{hook['id']}", json={"event_types": ["x"]}, headers=tenant.headers)
    assert patched.status_code == 422
    stream = await client.get("/v1/events/stream", headers={**tenant.headers, "Last-Event-ID": "x"})
    assert stream.status_code == 422
    unknown = await client.get("/v1/events/stream", headers={**tenant.headers, "Last-Event-ID": str(uuid.uuid4())})
    assert unknown.status_code == 404

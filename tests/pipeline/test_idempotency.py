"""`Idempotency-Key` on `POST /v1/chat`: one turn per key and body, replayed for 24 h; real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from cortex.db.models import IdempotencyKey, Message
from cortex.kit.runtime import Runtime
from tests.scripted_llm import Reply, ScriptedLLM
from tests.support import Tenant, create_agent


def _body(tenant: Tenant, agent_id: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"company_id": str(tenant.company_id), "agent_id": agent_id, "conversation_id": str(uuid.uuid4()),
            "customer_id": "customer-1", "message": message, **extra}


async def _turns(runtime: Runtime, conversation_id: str) -> int:
    async with runtime.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == uuid.UUID(conversation_id), Message.role == "customer")) or 0)


async def test_the_same_key_and_body_replays_the_stored_reply(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    body = _body(tenant, agent["id"], "Refund my order")
    headers = {**tenant.headers, "Idempotency-Key": "refund-" + uuid.uuid4().hex}
    first = await client.post("/v1/chat", json=body, headers=headers)
    second = await client.post("/v1/chat", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json() and len(llm.requests) == 1
    assert await _turns(runtime, body["conversation_id"]) == 1
    other = await client.post("/v1/chat", json={**body, "message": "Refund both orders"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    # Without a key every request is a turn of its own, as before.
    await client.post("/v1/chat", json=body, headers=tenant.headers)
    assert await _turns(runtime, body["conversation_id"]) == 2


async def test_concurrent_requests_with_one_key_run_one_turn(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    llm.queue(Reply(text="Done once.", delay_seconds=0.3))
    body = _body(tenant, agent["id"], "Book the table")
    headers = {**tenant.headers, "Idempotency-Key": "book-" + uuid.uuid4().hex}
    responses = await asyncio.gather(*(client.post("/v1/chat", json=body, headers=headers) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert {r.json()["reply"] for r in responses} == {"Done once."} and len(llm.requests) == 1
    assert await _turns(runtime, body["conversation_id"]) == 1


async def test_a_failed_turn_releases_its_key_so_the_retry_runs(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    runtime.settings.llm_max_retries = 0
    llm.queue(Reply(status=503), then=lambda body: Reply(text="Second time lucky."))
    body = _body(tenant, agent["id"], "Try again")
    headers = {**tenant.headers, "Idempotency-Key": "flaky-" + uuid.uuid4().hex}
    try:
        failed = await client.post("/v1/chat", json=body, headers=headers)
        retried = await client.post("/v1/chat", json=body, headers=headers)
    finally:
        runtime.settings.llm_max_retries = 1
    assert failed.status_code == 503 and retried.status_code == 200
    assert retried.json()["reply"] == "Second time lucky."


async def test_keys_are_per_company_expire_after_a_day_and_must_be_sane(
        client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    theirs = await create_agent(client, other_tenant, settings={"cache": {"enabled": False}})
    key = "shared-" + uuid.uuid4().hex
    mine = _body(tenant, agent["id"], "Hello")
    assert (await client.post("/v1/chat", json=mine, headers={**tenant.headers, "Idempotency-Key": key})
            ).status_code == 200
    # Another company's request with the same key is its own: no 422, no replay of our reply.
    other = await client.post("/v1/chat", json=_body(other_tenant, theirs["id"], "Different"),
                              headers={**other_tenant.headers, "Idempotency-Key": key})
    assert other.status_code == 200 and other.json()["reply"] == "echo: Different"
    async with runtime.database.session() as session:
        await session.execute(update(IdempotencyKey).where(IdempotencyKey.company_id == tenant.company_id,
                                                           IdempotencyKey.key == key)
                              .values(created_at=func.now() - timedelta(hours=25)))
    calls = len(llm.requests)
    again = await client.post("/v1/chat", json=mine, headers={**tenant.headers, "Idempotency-Key": key})
    assert again.status_code == 200 and len(llm.requests) == calls + 1  # expired: a new turn
    for bad_key in ("has space", "k" * 256):
        bad = await client.post("/v1/chat", json=mine, headers={**tenant.headers, "Idempotency-Key": bad_key})
        assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"]


async def test_a_claim_sweeps_the_companys_expired_keys(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    old_keys = ["old-a-" + uuid.uuid4().hex, "old-b-" + uuid.uuid4().hex]
    for key in old_keys:
        response = await client.post("/v1/chat", json=_body(tenant, agent["id"], "Hi"),
                                     headers={**tenant.headers, "Idempotency-Key": key})
        assert response.status_code == 200
    async with runtime.database.session() as session:
        await session.execute(update(IdempotencyKey).where(IdempotencyKey.key.in_(old_keys))
                              .values(created_at=func.now() - timedelta(hours=30)))
    fresh = "fresh-" + uuid.uuid4().hex
    await client.post("/v1/chat", json=_body(tenant, agent["id"], "Hi"),
                      headers={**tenant.headers, "Idempotency-Key": fresh})
    async with runtime.database.session() as session:
        left = (await session.scalars(select(IdempotencyKey.key).where(
            IdempotencyKey.company_id == tenant.company_id, IdempotencyKey.key.in_([*old_keys, fresh])))).all()
    assert list(left) == [fresh]

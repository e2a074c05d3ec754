"""Messages left `pending` by a failed database: remembered marks, and the sweep of stale ones."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from cortex.app import create_app
from cortex.conversations import store
from cortex.conversations.pending import SWEPT_ERROR, PendingMessages
from cortex.db.engine import Database
from cortex.db.models import Message
from cortex.events.models import Event
from cortex.kit.runtime import Runtime
from tests.scripted_llm import refused_api_base
from tests.support import Tenant, chat, create_agent


def _turn(tenant: Tenant, agent_id: uuid.UUID) -> store.CustomerTurn:
    return store.CustomerTurn(message_id=uuid.uuid4(), company_id=tenant.company_id, conversation_id=uuid.uuid4(),
                              agent_id=agent_id, customer_id="c-1", content="hello", channel="api",
                              request_id=uuid.uuid4().hex, metadata={})


async def _agent_id(client: httpx.AsyncClient, tenant: Tenant) -> uuid.UUID:
    return uuid.UUID((await create_agent(client, tenant))["id"])


async def _status(runtime: Runtime, message_id: uuid.UUID) -> tuple[str, str | None]:
    async with runtime.database.session() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message.status, message.error


def _unreachable(runtime: Runtime) -> Runtime:
    port = refused_api_base().split(":")[2].split("/")[0]
    settings = runtime.settings.model_copy(update={"database_url": f"postgresql://cortex@127.0.0.1:{port}/gone"})
    return dataclasses.replace(runtime, settings=settings, database=Database(settings), components={})


async def test_the_sweep_fails_only_messages_pending_for_too_long(client: httpx.AsyncClient, tenant: Tenant,
                                                                  runtime: Runtime) -> None:
    agent_id = await _agent_id(client, tenant)
    stale, fresh, answered = _turn(tenant, agent_id), _turn(tenant, agent_id), _turn(tenant, agent_id)
    async with runtime.database.session() as session:
        await store.store_turn(session, stale, status="pending")
        await store.store_turn(session, fresh, status="pending")
        await store.store_turn(session, answered, status="ok")
        await session.execute(update(Message).where(Message.id.in_([stale.message_id, answered.message_id]))
                              .values(created_at=Message.created_at
                                      - timedelta(seconds=2 * runtime.settings.pending_stale_seconds)))
    swept = await PendingMessages(runtime).sweep()
    assert swept >= 1
    assert await _status(runtime, stale.message_id) == ("failed", SWEPT_ERROR)
    assert (await _status(runtime, fresh.message_id))[0] == "pending"
    assert (await _status(runtime, answered.message_id))[0] == "ok"
    async with runtime.database.session() as session:
        kinds = list(await session.scalars(select(Event.type).where(Event.company_id == tenant.company_id)))
    assert "message.failed" in kinds


async def test_a_mark_that_failed_is_written_once_the_database_answers(client: httpx.AsyncClient, tenant: Tenant,
                                                                       runtime: Runtime) -> None:
    turn = _turn(tenant, await _agent_id(client, tenant))
    async with runtime.database.session() as session:
        await store.store_turn(session, turn, status="pending")
    down = _unreachable(runtime)
    pending = PendingMessages(down)
    try:
        pending.remember(tenant.company_id, turn.message_id, "the database is unavailable (request r-1)")
        await asyncio.sleep(1.2)  # two tries against the refusing server
        assert pending.waiting == 1 and (await _status(runtime, turn.message_id))[0] == "pending"
        pending.runtime = runtime  # the database is back
        for _ in range(50):
            if not pending.waiting:
                break
            await asyncio.sleep(0.2)
        assert await _status(runtime, turn.message_id) == ("failed", "the database is unavailable (request r-1)")
    finally:
        await pending.aclose()
        await down.database.dispose()


async def test_requests_during_a_database_outage_are_503_with_retry_after(tenant: Tenant, runtime: Runtime) -> None:
    down = _unreachable(runtime)
    transport = httpx.ASGITransport(app=create_app(runtime=down), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cortex.test") as http:
            for response in (await chat(http, tenant, str(uuid.uuid4()), "hello"),
                             await http.get("/v1/agents", headers=tenant.headers)):
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"] == "5"
                assert "unavailable" in response.json()["detail"] and response.json()["request_id"]
            compatible = await http.post("/v1/chat/completions", headers=tenant.headers,
                                         json={"model": "x", "messages": [{"role": "user", "content": "hi"}]})
            assert compatible.status_code == 503 and compatible.json()["error"]["type"] == "server_error"
    finally:
        await down.database.dispose()

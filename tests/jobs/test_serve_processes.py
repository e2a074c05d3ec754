"""Real `cortex serve` processes on one PostgreSQL server (TCP) and one Redis: a server killed with SIGKILL while
deliveries and fact extractions are queued or running, and two servers sharing the live events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cortex.db.models import MemoryFact
from cortex.events.models import Event, WebhookDelivery
from cortex.kit.runtime import Runtime
from tests.events.conftest import IdempotentReceiver, create_webhook, eventually
from tests.events.test_event_stream import Stream
from tests.scripted_llm import Reply, ScriptedLLM, echo
from tests.serve_process import ServeProcess
from tests.support import Tenant, chat, create_agent
from tests.webhook_target import WebhookTarget

TURNS = 3
EVENTS_PER_TURN = 3  # conversation.created, message.received, message.replied




@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for server in started:
        server.stop()


def _slow_extraction(delay: float) -> Any:
    """Chat replies echo; each fact extraction (a JSON-schema request) names the turn's order number, slowly."""
    def script(body: dict[str, Any]) -> Reply:
        if "response_format" not in body:
            return echo(body)
        turn = json.loads(body["messages"][-1]["content"])["customer_message"]
        number = turn.rsplit(" ", 1)[-1].rstrip(".")
        reply = Reply(text=json.dumps({"facts": [{
            "fact": f"The customer's order number is {number}.", "category": "history", "confidence": 0.9,
            "subject": f"order_{number}", "value": number}]}))
        reply.delay_seconds = delay
        return reply
    return script


async def test_a_server_killed_with_deliveries_and_extractions_queued_finishes_them_after_restart_once(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM, webhooks: WebhookTarget,
        redis_url: str, servers: list[ServeProcess]) -> None:
    hook = await create_webhook(client, tenant, webhooks,
                                event_types=["conversation.created", "message.received", "message.replied"])
    receiver = IdempotentReceiver(hook["secret"], hold_seconds=60)
    webhooks.answer = receiver
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    llm.script = _slow_extraction(delay=2.0)
    # The embedding model loads before the worker starts (it holds the GIL for long enough on a busy
    # machine to stop a worker's heartbeat), and a heartbeat may lag a few seconds before it counts as dead.
    patient = {"CORTEX_PRELOAD_EMBEDDINGS": "true", "CORTEX_JOBS_STALLED_AFTER_SECONDS": "5"}
    first = ServeProcess(runtime.settings, llm_api_base=llm.api_base, redis_url=redis_url, extra=patient)
    servers.append(first.start())
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
        for n in range(TURNS):
            response = await chat(http, tenant, agent["id"], f"My order is ORD-{n}.",
                                  customer_id="cust-kill")
            assert response.status_code == 200, response.text

    async def in_flight() -> bool:  # the first deliveries wait on the receiver, an extraction on the model
        return len(webhooks.calls) >= 1 and any("response_format" in r for r in llm.requests)

    await eventually(in_flight, within=30)
    first.kill()
    receiver.released.set()
    llm.script = _slow_extraction(delay=0.0)
    second = ServeProcess(runtime.settings, llm_api_base=llm.api_base, redis_url=redis_url, extra=patient)
    servers.append(second.start())  # hands the dead server's jobs back once its heartbeat is stale

    async def all_delivered() -> bool:
        async with runtime.database.session() as session:
            statuses = (await session.scalars(select(WebhookDelivery.status).where(
                WebhookDelivery.company_id == tenant.company_id))).all()
        return sorted(statuses) == ["delivered"] * TURNS * EVENTS_PER_TURN

    async def facts() -> list[str]:
        async with runtime.database.session() as session:
            return list((await session.scalars(select(MemoryFact.fact).where(
                MemoryFact.company_id == tenant.company_id, MemoryFact.customer_id == "cust-kill",
                MemoryFact.superseded_by.is_(None)))).all())

    async def all_extracted() -> bool:
        return len(await facts()) == TURNS

    await eventually(all_delivered, within=120)
    await eventually(all_extracted, within=120)
    async with runtime.database.session() as session:
        event_ids = (await session.scalars(select(Event.id).where(
            Event.company_id == tenant.company_id, Event.type.in_(
                ("conversation.created", "message.received", "message.replied"))))).all()
        fact_events = await session.scalar(select(func.count()).select_from(Event).where(
            Event.company_id == tenant.company_id, Event.type == "memory.fact.created"))
    # Every event applied once at the receiver (a repeat, sent after the restart, keeps its webhook-id).
    assert sorted(receiver.applied) == sorted(str(i) for i in event_ids)
    assert len(receiver.applied) == len(set(receiver.applied)) == TURNS * EVENTS_PER_TURN
    # Each turn's fact once, whether its extraction ran before the kill, was cut off by it, or ran after.
    assert sorted(await facts()) == sorted(f"The customer's order number is ORD-{n}." for n in range(TURNS))
    assert fact_events == TURNS


async def test_two_servers_share_live_events_and_a_resume_loses_nothing(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM, redis_url: str,
        servers: list[ServeProcess]) -> None:
    quiet = {"CORTEX_MEMORY_EXTRACTION": "false"}
    one = ServeProcess(runtime.settings, llm_api_base=llm.api_base, redis_url=redis_url, extra=quiet)
    two = ServeProcess(runtime.settings, llm_api_base=llm.api_base, redis_url=redis_url, extra=quiet)
    servers.extend((one.start(), two.start()))
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})

    async def turn(http: httpx.AsyncClient, text: str) -> None:
        response = await chat(http, tenant, agent["id"], text, conversation_id=uuid.uuid4(), customer_id="cust-2")
        assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=one.base_url, timeout=30) as on_one, \
            httpx.AsyncClient(base_url=two.base_url, timeout=30) as on_two:
        async with on_two.stream("GET", "/v1/events/stream", headers=tenant.headers) as response:
            assert response.status_code == 200
            stream = Stream(response.aiter_lines())
            try:
                await turn(on_one, "Hello from server one")  # produced on one, seen on two
                seen = [await stream.next_event(within=10) for _ in range(EVENTS_PER_TURN)]
            finally:
                await stream.close()
        assert [e["type"] for e in seen] == ["conversation.created", "message.received", "message.replied"]
        assert seen[1]["data"]["content"] == "Hello from server one"
        # Disconnected from two; meanwhile one produces more; two resumes from the last id it sent.
        for n in range(2):
            await turn(on_one, f"While away {n}")
        async with on_two.stream("GET", "/v1/events/stream",
                                 headers={**tenant.headers, "Last-Event-ID": seen[-1]["id"]}) as response:
            assert response.status_code == 200
            stream = Stream(response.aiter_lines())
            try:
                missed = [await stream.next_event(within=10) for _ in range(2 * EVENTS_PER_TURN)]
                await stream.nothing_for(1.0)
            finally:
                await stream.close()
    async with runtime.database.session() as session:
        stored = (await session.execute(select(Event.id, Event.type).where(
            Event.company_id == tenant.company_id).order_by(Event.txid, Event.seq))).all()
    order = [str(i) for i, _ in stored]
    after_seen = order[order.index(seen[-1]["id"]) + 1:]
    assert [e["id"] for e in missed] == after_seen and len(missed) == 2 * EVENTS_PER_TURN
    assert [e["data"].get("content") for e in missed if e["type"] == "message.received"] == [
        "While away 0", "While away 1"]

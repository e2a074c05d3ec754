"""Events written by the other domains: tool calls and hand-offs, memory facts, knowledge sources."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.responses import PlainTextResponse

from cortex.kit.runtime import Runtime
from tests.knowledge.test_ingestion import ingest_file, make_source, upload
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall
from tests.support import Tenant, chat, create_action, create_agent
from tests.webhook_target import WebhookTarget


async def events_of(client: httpx.AsyncClient, tenant: Tenant, *types: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params={"type": ",".join(types), "page_size": 100},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_tool_calls_and_a_hand_off_are_events(client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM,
                                                    webhooks: WebhookTarget) -> None:
    webhooks.answer = lambda call: PlainTextResponse("no", status_code=500 if call.path == "/broken" else 200)
    schema = {"type": "object", "properties": {}}
    works = await create_action(client, tenant, name="lookup", method="POST", webhook_url=webhooks.base_url + "/ok",
                                parameters_schema=schema)
    broken = await create_action(client, tenant, name="refund", method="POST",
                                 webhook_url=webhooks.base_url + "/broken", parameters_schema=schema)
    handoff = await create_action(client, tenant, name="human_handoff", method="POST",
                                  webhook_url=webhooks.base_url + "/ok", parameters_schema=schema)
    agent = await create_agent(client, tenant, action_ids=[works["id"], broken["id"], handoff["id"]])
    llm.queue(Reply(tool_calls=[ToolCall("lookup", "{}"), ToolCall("refund", "{}"), ToolCall("human_handoff", "{}")]),
              Reply(text="A colleague will take over."))
    response = await chat(client, tenant, agent["id"], "I want a person")
    assert response.status_code == 200, response.text
    actions = await events_of(client, tenant, "action.executed", "action.failed")
    assert sorted((e["type"], e["data"]["action"]) for e in actions) == [
        ("action.executed", "human_handoff"), ("action.executed", "lookup"), ("action.failed", "refund")]
    [handed] = await events_of(client, tenant, "agent.handoff_requested")
    assert handed["data"]["reason"] == "action" and handed["data"]["action"] == "human_handoff"


async def test_memory_facts_created_and_superseded(client: httpx.AsyncClient, tenant: Tenant) -> None:
    ids = []
    for city in ("Rotterdam", "Utrecht"):
        saved = await client.post("/v1/memory/cust-9/save", headers=tenant.headers, json={
            "company_id": str(tenant.company_id), "fact": f"The customer lives in {city}.",
            "subject": "home_city", "value": city})
        assert saved.status_code == 200, saved.text
        ids.append(saved.json()["fact_id"])
    created = await events_of(client, tenant, "memory.fact.created")
    assert [e["data"]["fact_id"] for e in created] == ids
    assert all("Rotterdam" not in str(e["data"]) for e in created)  # the fact's text stays out
    [superseded] = await events_of(client, tenant, "memory.fact.superseded")
    assert superseded["data"]["fact_id"] == ids[0] and superseded["data"]["superseded_by"] == ids[1]


async def test_a_finished_ingestion_is_knowledge_document_ready(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    path = upload(runtime, tenant, "hours.txt", b"The shop opens at nine and closes at five on weekdays.")
    response = await ingest_file(client, tenant, source["id"], path)
    assert response.status_code == 200, response.text
    [ready] = await events_of(client, tenant, "knowledge.document.ready")
    assert ready["data"]["source_id"] == source["id"] and ready["data"]["chunk_count"] >= 1
    assert ready["data"]["document_id"] == response.json()["document_id"] and ready["data"]["name"] == "hours.txt"
    broken = await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "hours.pdf", b"%PDF-1.4 junk"))
    assert broken.status_code == 422
    [failed] = await events_of(client, tenant, "knowledge.document.failed")
    assert failed["data"]["document_id"] == broken.json()["document_id"] and failed["data"]["name"] == "hours.pdf"
    assert failed["data"]["previous_index_kept"] is False

"""Automatic extraction after a real /v1/chat turn, with the model's output scripted."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from cortex.db.models import MemoryFact, Message
from cortex.kit.runtime import Runtime
from cortex.memory.component import MemoryComponent
from tests.conftest import SCRIPTED_MODEL
from tests.memory.conftest import fact, facts_reply, view
from tests.observability.test_metrics import scrape, value
from tests.scripted_llm import Reply, ScriptedLLM
from tests.support import Tenant, chat, create_agent, queued_jobs, run_jobs

# These tests repeat messages: a semantic cache hit skips post actions, extraction included.
NO_CACHE = {"cache": {"enabled": False}}


async def _turn(client: httpx.AsyncClient, tenant: Tenant, agent_id: str, memory: MemoryComponent, message: str,
                extraction_reply: Reply, customer_id: str, llm: ScriptedLLM) -> None:
    llm.queue(Reply(text="Thanks, noted."), extraction_reply)
    response = await chat(client, tenant, agent_id, message, customer_id=customer_id)
    assert response.status_code == 200, response.text
    await run_jobs(memory.runtime)


async def _facts(runtime: Runtime, tenant: Tenant, customer_id: str) -> list[MemoryFact]:
    async with runtime.database.session() as session:
        rows = await session.scalars(select(MemoryFact).where(MemoryFact.company_id == tenant.company_id,
                                                              MemoryFact.customer_id == customer_id)
                                     .order_by(MemoryFact.created_at))
        return list(rows)


async def test_valid_facts_are_stored_with_their_source(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                                                        llm: ScriptedLLM, memory: MemoryComponent,
                                                        extraction: None) -> None:
    agent = await create_agent(client, tenant, settings=NO_CACHE)
    before = memory.stats.copy()
    await _turn(client, tenant, agent["id"], memory, "Please answer in Arabic from now on. My order is ORD-1234.",
                facts_reply(fact("The customer prefers Arabic.", "preferred_language", "Arabic", "preference"),
                            fact("The customer's order number is ORD-1234.", "order_number", "ORD-1234", "history"),
                            fact("The customer may be tired.", "mood", "tired", "sentiment", confidence=0.2)),
                "cust-ext", llm)
    extraction_request = llm.requests[-1]
    assert extraction_request["model"] == SCRIPTED_MODEL.split("/", 1)[1]
    schema = extraction_request["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    assert "ORD-1234" in extraction_request["messages"][-1]["content"]
    rows = await _facts(runtime, tenant, "cust-ext")
    assert [(r.fact, r.category, r.subject, r.source) for r in rows] == [
        ("The customer prefers Arabic.", "preference", "preferred_language", "extraction"),
        ("The customer's order number is ORD-1234.", "history", "order_number", "extraction")]
    async with runtime.database.session() as session:
        message = await session.scalar(select(Message).where(Message.id == rows[0].source_message_id))
    assert message is not None and message.role == "customer" and "Arabic" in message.content
    assert memory.stats["facts_created"] - before["facts_created"] == 2


async def test_invalid_or_empty_output_is_counted_never_stored(client: httpx.AsyncClient, tenant: Tenant,
                                                               runtime: Runtime, llm: ScriptedLLM,
                                                               memory: MemoryComponent, extraction: None) -> None:
    agent = await create_agent(client, tenant, settings=NO_CACHE)
    before = memory.stats.copy()
    outputs = [Reply(text="{not json at all"), Reply(text=""), Reply(text='["a list", "not an object"]'),
               Reply(text='{"facts": [{"fact": "Likes cats.", "category": "gossip", "confidence": 0.9, '
                          '"subject": "pet", "value": "cats"}]}'),
               Reply(text='{"facts": [{"fact": "Likes cats.", "category": "general", "confidence": 3, '
                          '"subject": "pet", "value": "cats"}]}'),
               Reply(text='{"facts": [{"fact": "Likes cats."}]}'),
               Reply(text='{"facts": []}')]
    for output in outputs:
        await _turn(client, tenant, agent["id"], memory, "I like cats.", output, "cust-bad", llm)
    assert await _facts(runtime, tenant, "cust-bad") == []
    assert memory.stats["invalid_output"] - before["invalid_output"] == 5
    assert memory.stats["empty_output"] - before["empty_output"] == 1
    assert memory.stats["no_facts"] - before["no_facts"] == 1
    # A model that fails outright is counted too, and the chat reply was not affected.
    await _turn(client, tenant, agent["id"], memory, "I like cats.", Reply(status=400), "cust-bad", llm)
    assert memory.stats["model_error"] - before["model_error"] == 1


async def test_a_contradiction_supersedes_and_is_never_recalled(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime, llm: ScriptedLLM,
                                                                memory: MemoryComponent, extraction: None) -> None:
    agent = await create_agent(client, tenant, settings=NO_CACHE)
    await _turn(client, tenant, agent["id"], memory, "I live at 12 Palm Street, Jeddah.",
                facts_reply(fact("The customer's home address is 12 Palm Street, Jeddah.", "home_address",
                                 "12 Palm Street, Jeddah")), "cust-move", llm)
    await _turn(client, tenant, agent["id"], memory, "My address is now 40 Olaya Road, Riyadh.",
                facts_reply(fact("The customer's home address is 40 Olaya Road, Riyadh.", "Home Address",
                                 "40 Olaya Road, Riyadh")), "cust-move", llm)
    old, new = await _facts(runtime, tenant, "cust-move")
    assert old.superseded_by == new.id and old.superseded_at is not None and new.superseded_by is None
    recalled = await memory.recall(company_id=tenant.company_id, agent_id=uuid.UUID(agent["id"]),
                                   customer_id="cust-move", query="Where do I live? What is my address?",
                                   token_budget=500)
    assert [f.id for f in recalled] == [new.id]
    body = await view(client, tenant, "cust-move", "12 Palm Street Jeddah")
    assert [f["id"] for f in body["facts"]] == [str(new.id)] and body["fact_count"] == 1


async def test_a_near_duplicate_confirms_instead_of_duplicating(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime, llm: ScriptedLLM,
                                                                memory: MemoryComponent, extraction: None) -> None:
    agent = await create_agent(client, tenant, settings=NO_CACHE)
    await _turn(client, tenant, agent["id"], memory, "I'm allergic to peanuts.",
                facts_reply(fact("The customer is allergic to peanuts.", "allergy_peanuts", "allergic",
                                 "context", 0.7)), "cust-nd", llm)
    [first] = await _facts(runtime, tenant, "cust-nd")
    # Same subject and value in other words, then a paraphrase the model keyed differently.
    await _turn(client, tenant, agent["id"], memory, "Remember, peanuts make me ill.",
                facts_reply(fact("Customer has a peanut allergy.", "allergy_peanuts", "Allergic.", "context", 0.95)),
                "cust-nd", llm)
    await _turn(client, tenant, agent["id"], memory, "No peanuts please, I'm allergic.",
                facts_reply(fact("The customer is allergic to peanuts", "food_allergy", "peanuts", "context")),
                "cust-nd", llm)
    [only] = await _facts(runtime, tenant, "cust-nd")
    assert only.id == first.id and only.superseded_by is None
    assert only.confidence == 0.95 and only.last_confirmed_at > first.last_confirmed_at
    assert memory.stats["facts_confirmed"] >= 2


async def test_without_a_model_extraction_is_off_and_health_says_so(client: httpx.AsyncClient, tenant: Tenant,
                                                                    runtime: Runtime, memory: MemoryComponent,
                                                                    extraction: None) -> None:
    agent = await create_agent(client, tenant, settings={"offline_fallback": True, **NO_CACHE})
    before = memory.stats["no_model"]
    response = await chat(client, tenant, agent["id"], "My name is Omar and I prefer Arabic.", customer_id="cust-nm")
    assert response.status_code == 200, response.text
    assert memory.stats["no_model"] == before + 1 and not await queued_jobs(runtime)
    health = (await client.get("/health/detailed", headers=tenant.headers)).json()
    assert health["checks"]["memory_extraction"].startswith("off: no model")
    assert health["status"] == "ok" and health["checks"]["litellm"] == "not configured"
    # Memory itself still works without a model.
    saved = await client.post("/v1/memory/cust-nm/save", headers=tenant.headers,
                              json={"company_id": str(tenant.company_id), "fact": "Prefers Arabic."})
    assert saved.status_code == 200


async def test_health_reports_extraction_on_and_switched_off(client: httpx.AsyncClient, tenant: Tenant,
                                                             runtime: Runtime, llm: ScriptedLLM) -> None:
    health = (await client.get("/health/detailed", headers=tenant.headers)).json()
    assert health["checks"]["memory_extraction"] == "off: disabled by CORTEX_MEMORY_EXTRACTION"
    runtime.settings.memory_extraction = True
    try:
        health = (await client.get("/health/detailed", headers=tenant.headers)).json()
    finally:
        runtime.settings.memory_extraction = False
    assert health["checks"]["memory_extraction"] == "ok" and health["checks"]["litellm"] == "ok"


async def test_a_metrics_scrape_shows_extraction_runs_and_fact_outcomes(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM, memory: MemoryComponent,
        extraction: None) -> None:
    agent = await create_agent(client, tenant, settings=NO_CACHE)
    before = await scrape(client, tenant.headers)
    turns = [facts_reply(fact("The customer lives at 4 Palm Street.", "home_address", "4 Palm Street"),
                         fact("The customer's dog is Max.", "pet_dog_name", "Max")),
             facts_reply(fact("The customer lives at 4 Palm Street.", "home_address", "4 Palm Street")),
             facts_reply(fact("The customer now lives at 9 Olaya Road.", "home_address", "9 Olaya Road")),
             Reply(text="{not json"), Reply(text='{"facts": []}')]
    for output in turns:
        await _turn(client, tenant, agent["id"], memory, "About me.", output, "cust-metrics", llm)
    after = await scrape(client, tenant.headers)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("cortex_memory_extraction_runs_total", outcome="stored") == 3
    assert delta("cortex_memory_extraction_runs_total", outcome="invalid_output") == 1
    assert delta("cortex_memory_extraction_runs_total", outcome="no_facts") == 1
    assert delta("cortex_memory_facts_total", action="created") == 3
    assert delta("cortex_memory_facts_total", action="confirmed") == 1
    assert delta("cortex_memory_facts_total", action="superseded") == 1
    # Bounded labels only: no customer id, fact text or message id reaches the metrics.
    labels = {v for (name, ls), _ in after.items() if name.startswith("cortex_memory_") for _, v in ls}
    assert labels <= {"stored", "no_facts", "empty_output", "invalid_output", "model_error", "source_gone",
                      "created", "confirmed", "superseded"}
    rows = await _facts(runtime, tenant, "cust-metrics")
    # Stored with what recall needs precomputed: the token count and the subject's concepts.
    assert all(r.token_count and r.token_count > 3 for r in rows)
    assert {tuple(r.concepts or ()) for r in rows} == {("address",), ("pet",)}

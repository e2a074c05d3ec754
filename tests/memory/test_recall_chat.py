"""Memory in the chat path: recall scoping and ordering, facts reaching the next conversation's prompt,
and forgetting a customer."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from cortex.db.models import Conversation, MemoryAuditRecord, MemoryFact, Message, SemanticCacheEntry
from cortex.kit.runtime import Runtime
from cortex.memory import repository
from cortex.memory.component import MemoryComponent
from cortex.memory.service import customer_ref
from tests.memory.conftest import fact, facts_reply, save, view
from tests.scripted_llm import Reply, ScriptedLLM
from tests.support import Tenant, chat, create_agent, run_jobs


def _system_prompt(llm: ScriptedLLM, index: int = -1) -> str:
    content: str = llm.requests[index]["messages"][0]["content"]
    return content


async def test_recall_is_scoped_to_company_customer_and_agent(client: httpx.AsyncClient, tenant: Tenant,
                                                              other_tenant: Tenant, memory: MemoryComponent) -> None:
    sales = await create_agent(client, tenant)
    support = await create_agent(client, tenant)
    common = await save(client, tenant, "cust-s", "The customer's favourite colour is green.")
    scoped = await save(client, tenant, "cust-s", "The customer's favourite colour for gifts is purple.",
                        agent_id=sales["id"])
    await save(client, tenant, "cust-other", "The customer's favourite colour is red.")
    await save(client, other_tenant, "cust-s", "The customer's favourite colour is yellow.")

    async def recalled(agent_id: str, company_id: uuid.UUID = tenant.company_id) -> list[str]:
        facts = await memory.recall(company_id=company_id, agent_id=uuid.UUID(agent_id), customer_id="cust-s",
                                    query="What colour do I like?", token_budget=1_000)
        return [str(f.id) for f in facts]

    assert sorted(await recalled(sales["id"])) == sorted([common["fact_id"], scoped["fact_id"]])
    assert await recalled(support["id"]) == [common["fact_id"]]
    theirs = await memory.recall(company_id=other_tenant.company_id, agent_id=uuid.UUID(support["id"]),
                                 customer_id="cust-s", query="What colour do I like?", token_budget=1_000)
    assert [f.fact for f in theirs] == ["The customer's favourite colour is yellow."]
    # The API's view shows every scope of the customer's facts.
    assert (await view(client, tenant, "cust-s"))["fact_count"] == 2


async def test_recall_orders_by_relevance_keeps_preferences_and_fits_the_budget(
        client: httpx.AsyncClient, tenant: Tenant, memory: MemoryComponent) -> None:
    agent = await create_agent(client, tenant)
    language = await save(client, tenant, "cust-o", "The customer prefers replies in Arabic.", category="preference")
    phone = await save(client, tenant, "cust-o", "The customer's phone number is 0551234567.")
    order = await save(client, tenant, "cust-o", "Order ORD-7788 contained a coffee grinder.", category="history")
    for i in range(30):
        await save(client, tenant, "cust-o", f"Order ORD-{1000 + i} contained a book about gardening volume {i}.",
                   category="history")
    facts = await memory.recall(company_id=tenant.company_id, agent_id=uuid.UUID(agent["id"]), customer_id="cust-o",
                                query="Has ORD-7788 shipped yet?", token_budget=1_000)
    ids = [str(f.id) for f in facts]
    assert ids[0] == order["fact_id"]
    assert language["fact_id"] in ids  # a standing preference comes whatever the message
    assert phone["fact_id"] not in ids[:3]
    assert facts[0].score == max(f.score for f in facts)
    small = await memory.recall(company_id=tenant.company_id, agent_id=uuid.UUID(agent["id"]), customer_id="cust-o",
                                query="Has ORD-7788 shipped yet?", token_budget=20)
    assert [str(f.id) for f in small][:1] == [order["fact_id"]] and len(small) < len(facts)
    assert await memory.recall(company_id=tenant.company_id, agent_id=uuid.UUID(agent["id"]), customer_id="nobody",
                               query="Has ORD-7788 shipped yet?", token_budget=1_000) == []


async def test_a_saved_fact_reaches_the_prompt_and_another_customers_does_not(
        client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    await save(client, tenant, "cust-p", "The customer's dog is called Max.")
    await save(client, tenant, "cust-stranger", "The stranger's dog is called Rex.")
    response = await chat(client, tenant, agent["id"], "Can I bring my dog to the store?", customer_id="cust-p")
    assert response.status_code == 200, response.text
    prompt = _system_prompt(llm)
    assert "What we know about this customer:" in prompt and "The customer's dog is called Max." in prompt
    assert "Rex" not in prompt


async def test_a_fact_extracted_in_one_conversation_reaches_the_next(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM, memory: MemoryComponent,
        extraction: None) -> None:
    agent = await create_agent(client, tenant)
    llm.queue(Reply(text="Noted, I will reply in Arabic."),
              facts_reply(fact("The customer prefers replies in Arabic.", "preferred_language", "Arabic", "preference"),
                          fact("The customer's order number is ORD-1234.", "order_number", "ORD-1234", "history")))
    first = await chat(client, tenant, agent["id"], "Please use Arabic. I'm asking about ORD-1234.",
                       conversation_id=uuid.uuid4(), customer_id="cust-e2e")
    assert first.status_code == 200, first.text
    await run_jobs(runtime)
    llm.queue(Reply(text="It ships tomorrow."), facts_reply())
    second = await chat(client, tenant, agent["id"], "When does my order arrive?", conversation_id=uuid.uuid4(),
                        customer_id="cust-e2e")
    assert second.status_code == 200, second.text
    await run_jobs(runtime)
    chat_request = llm.requests[-2]  # the last one is turn 2's own extraction
    assert "response_format" not in chat_request
    prompt = chat_request["messages"][0]["content"]
    assert "The customer prefers replies in Arabic." in prompt and "ORD-1234" in prompt


async def test_forget_customer_deletes_facts_messages_and_leaves_an_audit_record(
        client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    other_agent = await create_agent(client, other_tenant)
    for message in ("My card ends in 4242.", "And my email is sara@example.com."):
        assert (await chat(client, tenant, agent["id"], message, customer_id="cust-f")).status_code == 200
    assert (await chat(client, tenant, agent["id"], "Hello", customer_id="cust-keep")).status_code == 200
    assert (await chat(client, other_tenant, other_agent["id"], "Hello", customer_id="cust-f")).status_code == 200
    first = await save(client, tenant, "cust-f", "The customer's address is 1 Sea Road.")
    await save(client, tenant, "cust-f", "The customer's card ends in 4242.")
    await save(client, tenant, "cust-keep", "Likes jazz.")
    await save(client, other_tenant, "cust-f", "Likes opera.")
    async with runtime.database.session() as session:  # a superseded fact goes too
        row = await session.get(MemoryFact, uuid.UUID(first["fact_id"]))
        assert row is not None
        row.superseded_by = uuid.uuid4()

    await run_jobs(runtime)  # the cache stores replies in jobs of their own
    response = await client.delete(f"/v1/memory/cust-f?company_id={tenant.company_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["facts_deleted"] == 2 and body["messages_deleted"] == 4 and body["conversations_deleted"] == 2
    # Both replies to cust-f were cacheable, so the semantic cache held two entries generated from them.
    assert body["cache_entries_deleted"] == 2 and body["customer_id"] == "cust-f"

    async with runtime.database.session() as session:
        async def count(model: type, company_id: uuid.UUID, customer_id: str) -> int:
            total = await session.scalar(select(func.count()).select_from(model).where(
                model.company_id == company_id, model.customer_id == customer_id))  # type: ignore[attr-defined]
            return int(total or 0)

        for model in (MemoryFact, Message, Conversation, SemanticCacheEntry):
            assert await count(model, tenant.company_id, "cust-f") == 0
            assert await count(model, tenant.company_id, "cust-keep") > 0
            assert await count(model, other_tenant.company_id, "cust-f") > 0
        record = await session.get(MemoryAuditRecord, uuid.UUID(body["audit_id"]))
    assert record is not None and record.company_id == tenant.company_id and record.action == "forget_customer"
    assert record.actor_name == "test" and record.actor_key_id is not None and record.created_at is not None
    assert record.counts == {"facts": 2, "messages": 4, "conversations": 2, "cache_entries": 2}
    assert record.customer_ref == customer_ref(tenant.company_id, "cust-f")
    stored = repr({column.key: getattr(record, column.key) for column in MemoryAuditRecord.__table__.columns})
    for secret in ("cust-f", "4242", "sara@example.com", "Sea Road"):
        assert secret not in stored
    assert (await view(client, tenant, "cust-f"))["facts"] == []
    assert (await view(client, other_tenant, "cust-f"))["fact_count"] == 1
    # Forgetting again is harmless and audited again.
    again = await client.delete(f"/v1/memory/cust-f?company_id={tenant.company_id}", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["facts_deleted"] == 0


async def test_forget_wins_over_an_extraction_still_in_flight(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM, memory: MemoryComponent,
        extraction: None) -> None:
    agent = await create_agent(client, tenant)
    slow = facts_reply(fact("The customer's locker code is 9911.", "locker_code", "9911"))
    slow.delay_seconds = 1.0
    llm.queue(Reply(text="OK."), slow)
    response = await chat(client, tenant, agent["id"], "My locker code is 9911.", customer_id="cust-race")
    assert response.status_code == 200
    asked = len(llm.requests)
    before = memory.stats["source_gone"]
    jobs = asyncio.create_task(run_jobs(runtime))
    deadline = time.monotonic() + 10
    while len(llm.requests) == asked:  # the extraction job has asked the model, which takes a second
        assert time.monotonic() < deadline and not jobs.done()
        await asyncio.sleep(0.02)
    response = await client.delete(f"/v1/memory/cust-race?company_id={tenant.company_id}", headers=tenant.headers)
    assert response.status_code == 200
    await jobs
    assert memory.stats["source_gone"] == before + 1
    assert (await view(client, tenant, "cust-race"))["fact_count"] == 0


async def test_a_concept_named_by_message_and_fact_adds_score_unless_many_facts_share_it(
        client: httpx.AsyncClient, tenant: Tenant, memory: MemoryComponent) -> None:
    agent = await create_agent(client, tenant)
    employer = await save(client, tenant, "cust-c", "My employer is Aramco.")
    await save(client, tenant, "cust-c", "The customer prefers replies in Arabic.", category="preference")
    visits = [(await save(client, tenant, "cust-c", f"Visited the store number {100 + i} to look at a lamp.",
                          category="history"))["fact_id"]
              for i in range(12)]  # "store" on a dozen visits: too common among this customer's facts to count
    assert len(set(visits)) == 12

    async def scores(query: str) -> dict[str, tuple[float, float]]:
        async with memory.runtime.database.connect().connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            facts = await repository.recall(driver, company_id=tenant.company_id, customer_id="cust-c",
                                            agent_id=uuid.UUID(agent["id"]), query=query,
                                            query_vector=await memory.runtime.embedder.embed_query(query))
        return {str(f.id): (f.score, f.similarity) for f in facts}

    recalled = await scores("Do you offer a corporate discount for my company?")
    score, similarity = recalled[employer["fact_id"]]
    assert score - similarity == pytest.approx(repository.CONCEPT_BOOST + repository.ATTRIBUTE_PRIOR)
    recalled = await scores("Which store is nearest?")
    # History facts get no attribute prior: any boost would show as a score above the similarity.
    deltas = [recalled[v][0] - recalled[v][1] for v in visits if v in recalled]
    assert deltas and all(delta == 0.0 for delta in deltas)


async def test_a_customer_without_facts_costs_no_embedding(client: httpx.AsyncClient, tenant: Tenant,
                                                           runtime: Runtime, memory: MemoryComponent,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await create_agent(client, tenant)
    embedded: list[str] = []
    original = runtime.embedder.embed_query

    async def counting(text: str, model: str = "minilm") -> object:
        embedded.append(text)
        return await original(text, model)

    monkeypatch.setattr(runtime.embedder, "embed_query", counting)
    agent_id = uuid.UUID(agent["id"])
    assert await memory.recall(company_id=tenant.company_id, agent_id=agent_id, customer_id="cust-new",
                               query="Where is my parcel?", token_budget=500) == []
    assert embedded == []
    # Another customer's fact, or one scoped to another agent, does not count as this customer's.
    await save(client, tenant, "cust-other", "Lives in Jeddah.")
    other_agent = await create_agent(client, tenant)
    await save(client, tenant, "cust-new", "Prefers email.", agent_id=other_agent["id"])
    assert await memory.recall(company_id=tenant.company_id, agent_id=agent_id, customer_id="cust-new",
                               query="Where is my parcel?", token_budget=500) == []
    assert embedded == []
    await save(client, tenant, "cust-new", "Lives in Riyadh.")
    recalled = await memory.recall(company_id=tenant.company_id, agent_id=agent_id, customer_id="cust-new",
                                   query="Where do I live?", token_budget=500)
    assert [f.fact for f in recalled][:1] == ["Lives in Riyadh."] and embedded == ["Where do I live?"]

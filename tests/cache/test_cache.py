"""The semantic cache through /v1/chat and /v1/cache: real PostgreSQL, LiteLLM to the scripted server."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from cortex.agents.schemas import AgentConfig
from cortex.agents.service import build_config
from cortex.cache.guards import normalize
from cortex.cache.service import DEFAULT_THRESHOLD, SemanticCache
from cortex.conversations import store as conversation_store
from cortex.db.models import Message, SemanticCacheEntry
from cortex.kit.cache_backend import RedisCacheBackend
from cortex.kit.runtime import Runtime
from cortex.pipeline.ports import MEMORY, CompletedTurn, HistoryTurn, MemoryFact
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall
from tests.support import Tenant, chat, create_action, create_agent, make_key, make_tenant, run_jobs
from tests.webhook_target import WebhookTarget


def _cache(runtime: Runtime) -> SemanticCache:
    component = runtime.components["semantic_cache"]
    assert isinstance(component, SemanticCache)
    return component


async def _settle(runtime: Runtime) -> None:
    """Stores and hit counts run after the reply: wait for them."""
    await run_jobs(runtime)
    await _cache(runtime).background.drain()


async def _entries(runtime: Runtime, agent_id: str) -> list[SemanticCacheEntry]:
    async with runtime.database.session() as session:
        rows = await session.scalars(select(SemanticCacheEntry)
                                     .where(SemanticCacheEntry.agent_id == uuid.UUID(agent_id)))
        return list(rows)


async def _ask(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, agent_id: str, message: str,
               **extra: Any) -> dict[str, Any]:
    response = await chat(client, tenant, agent_id, message, **extra)
    assert response.status_code == 200, response.text
    await _settle(runtime)
    body: dict[str, Any] = response.json()
    return body


async def _warm(client: httpx.AsyncClient, tenant: Tenant, agent_id: str, pairs: list[dict[str, str]],
                company_id: uuid.UUID | None = None) -> httpx.Response:
    return await client.post("/v1/cache/warm", headers=tenant.headers, json={
        "company_id": str(company_id or tenant.company_id), "agent_id": agent_id, "pairs": pairs})


async def test_a_generated_reply_is_served_again_from_the_cache(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    llm.queue(Reply(text="We are open 9 to 5, Sunday to Thursday.", prompt_tokens=80, completion_tokens=9))
    first = await _ask(client, tenant, runtime, agent["id"], "What are your opening hours?")
    assert first["cached"] is False and first["tokens"]["input"] == 80
    [entry] = await _entries(runtime, agent["id"])
    assert entry.origin == "generated" and entry.customer_id == "customer-1" and entry.expires_at is not None
    calls = len(llm.requests)
    conversation = uuid.uuid4()
    second = await _ask(client, tenant, runtime, agent["id"], "what are your opening hours",
                        customer_id="customer-2", conversation_id=conversation)
    assert len(llm.requests) == calls  # no model call
    assert second["cached"] is True and second["model_used"] == "cache"
    assert second["reply"] == "We are open 9 to 5, Sunday to Thursday."
    assert second["tokens"] == {"input": 0, "output": 0, "cost_usd": 0.0}
    assert second["step_timings"]["cache_check"] > 0
    async with runtime.database.session() as session:
        reply = await session.scalar(select(Message).where(Message.conversation_id == conversation,
                                                           Message.role == "assistant"))
    assert reply is not None and reply.cached and reply.model_used == "cache"
    assert reply.cache_entry_id == entry.id and reply.cache_similarity == pytest.approx(1.0)
    # A paraphrase is found by its embedding.
    third = await _ask(client, tenant, runtime, agent["id"], "What are the opening hours?")
    assert third["cached"] is True
    async with runtime.database.session() as session:
        hits = await session.scalar(select(SemanticCacheEntry.hit_count).where(SemanticCacheEntry.id == entry.id))
    assert hits == 2


async def test_no_hit_across_companies_or_agents(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                                 runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    sibling = await create_agent(client, tenant)
    foreign = await create_agent(client, other_tenant)
    response = await _warm(client, tenant, agent["id"], [{"question": "Do you ship abroad?",
                                                          "answer": "Yes, to 40 countries."}])
    assert response.status_code == 200, response.text
    assert (await _ask(client, tenant, runtime, agent["id"], "Do you ship abroad?"))["cached"] is True
    for owner, other in ((tenant, sibling), (other_tenant, foreign)):
        body = await _ask(client, owner, runtime, other["id"], "Do you ship abroad?")
        assert body["cached"] is False and body["reply"] == "echo: Do you ship abroad?"


async def test_different_order_ids_never_share_an_answer(client: httpx.AsyncClient, tenant: Tenant,
                                                         runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    llm.queue(Reply(text="Order ORD-1234 left our warehouse yesterday."))
    await _ask(client, tenant, runtime, agent["id"], "where is order ORD-1234")
    assert len(await _entries(runtime, agent["id"])) == 1
    other = await _ask(client, tenant, runtime, agent["id"], "where is order ORD-5678", customer_id="c-2")
    assert other["cached"] is False and other["reply"] == "echo: where is order ORD-5678"
    same = await _ask(client, tenant, runtime, agent["id"], "Where is order ORD-1234?", customer_id="c-3")
    assert same["cached"] is True  # the control: the same order is served
    # The embedding alone would have matched them (ORD-5678's own reply is cached now too); the guard refuses.
    cache = _cache(runtime)
    async with runtime.database.session() as session:
        config = await build_config(session, tenant.company_id, uuid.UUID(agent["id"]))
    decision = await cache.decide(agent=config, message="where is order ORD-9012")
    assert decision.hit is None and decision.reason == "guard:numbers"
    assert decision.candidates[0].similarity > DEFAULT_THRESHOLD


async def test_a_prompt_change_retires_generated_and_warmed_entries(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, system_prompt="Be brief.")
    await _warm(client, tenant, agent["id"], [{"question": "Do you ship abroad?", "answer": "Yes."}])
    await _ask(client, tenant, runtime, agent["id"], "Can I pay by card?")
    assert (await _ask(client, tenant, runtime, agent["id"], "Can I pay by card?"))["cached"] is True
    response = await client.patch(f"/v1/agents/{agent['id']}", headers=tenant.headers,
                                  json={"system_prompt": "Be detailed."})
    assert response.status_code == 200, response.text
    for question in ("Can I pay by card?", "Do you ship abroad?"):
        body = await _ask(client, tenant, runtime, agent["id"], question)
        assert body["cached"] is False and body["reply"] == f"echo: {question}"


async def test_warmed_pairs_survive_a_knowledge_change_generated_ones_do_not(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    await _warm(client, tenant, agent["id"], [{"question": "Do you ship abroad?", "answer": "Yes, warmed."}])
    await _ask(client, tenant, runtime, agent["id"], "Can I pay by card?")
    source = await client.post("/v1/knowledge/sources", headers=tenant.headers, json={"name": "Policies"})
    assert source.status_code == 201, source.text
    response = await client.patch(f"/v1/agents/{agent['id']}", headers=tenant.headers,
                                  json={"knowledge_source_ids": [source.json()["id"]]})
    assert response.status_code == 200 and response.json()["knowledge_version"] == 2
    assert (await _ask(client, tenant, runtime, agent["id"], "Do you ship abroad?"))["reply"] == "Yes, warmed."
    assert (await _ask(client, tenant, runtime, agent["id"], "Can I pay by card?"))["cached"] is False


async def test_a_tool_using_reply_is_not_cached(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                                                llm: ScriptedLLM, webhooks: WebhookTarget) -> None:
    action = await create_action(client, tenant, name="order_status", webhook_url=webhooks.base_url + "/orders",
                                 parameters_schema={"type": "object", "properties": {"id": {"type": "string"}}})
    agent = await create_agent(client, tenant, action_ids=[action["id"]])
    llm.queue(Reply(tool_calls=[ToolCall("order_status", '{"id": "A1"}')]), Reply(text="It ships today."))
    body = await _ask(client, tenant, runtime, agent["id"], "Has my latest order shipped?")
    assert body["actions_executed"] == ["order_status"] and len(webhooks.calls) == 1
    assert await _entries(runtime, agent["id"]) == []
    again = await _ask(client, tenant, runtime, agent["id"], "Has my latest order shipped?")
    assert again["cached"] is False


class _OneFactMemory:
    """Test-only memory component: every customer has one remembered fact."""

    available = True

    def __init__(self) -> None:
        self.fact = MemoryFact(id=uuid.uuid4(), fact="Prefers delivery to the office", category="preference",
                               confidence=0.9, score=0.8)

    async def recall(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, customer_id: str, query: str,
                     token_budget: int) -> list[MemoryFact]:
        return [self.fact]

    def extracts_for(self, agent: AgentConfig) -> bool:
        return False

    async def after_turn(self, turn: CompletedTurn) -> None:
        return None


async def test_a_memory_using_reply_is_not_cached(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                                                  llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    saved = runtime.components.get(MEMORY)
    runtime.components[MEMORY] = _OneFactMemory()
    try:
        await _ask(client, tenant, runtime, agent["id"], "Where will my parcel be delivered?")
        assert "Prefers delivery to the office" in llm.requests[-1]["messages"][0]["content"]
    finally:
        if saved is None:
            runtime.components.pop(MEMORY)
        else:
            runtime.components[MEMORY] = saved
    assert await _entries(runtime, agent["id"]) == []
    # The control: the same question without memory is cached.
    await _ask(client, tenant, runtime, agent["id"], "Where will my parcel be delivered?")
    assert len(await _entries(runtime, agent["id"])) == 1


async def test_a_turn_that_depends_on_earlier_turns_is_neither_cached_nor_answered_from_cache(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    await _ask(client, tenant, runtime, agent["id"], "Do you ship to Canada?", conversation_id=conversation)
    await _ask(client, tenant, runtime, agent["id"], "And how much does it cost?", conversation_id=conversation)
    assert [e.question for e in await _entries(runtime, agent["id"])] == ["Do you ship to Canada?"]
    # Warmed as a standalone question, it still is not served as a follow-up inside a conversation.
    await _warm(client, tenant, agent["id"], [{"question": "How much does it cost?", "answer": "10 euros."}])
    other = uuid.uuid4()
    await _ask(client, tenant, runtime, agent["id"], "Do you ship to Mexico?", conversation_id=other)
    follow_up = await _ask(client, tenant, runtime, agent["id"], "How much does it cost?", conversation_id=other)
    assert follow_up["cached"] is False
    assert (await _ask(client, tenant, runtime, agent["id"], "How much does it cost?"))["cached"] is True


async def test_never_cache_patterns_and_replies_naming_the_customer(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"never_cache_patterns": [r"\brefund"]}})
    await _ask(client, tenant, runtime, agent["id"], "Can I get a refund?")
    response = await client.post("/v1/customers", headers=tenant.headers,
                                 json={"customer_id": "cust-ana", "first_name": "Anabelle"})
    assert response.status_code in (200, 201), response.text
    llm.queue(Reply(text="Hello Anabelle, we open at nine."))
    await _ask(client, tenant, runtime, agent["id"], "When do you open?", customer_id="cust-ana")
    assert await _entries(runtime, agent["id"]) == []


async def test_warm_flush_and_stats(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                    runtime: Runtime, llm: ScriptedLLM) -> None:
    company = await make_tenant(runtime)  # fresh counters
    agent = await create_agent(client, company)
    pairs = [{"question": "Do you ship abroad?", "answer": "Yes."},
             {"question": "What are your opening hours?", "answer": "9 to 5."},
             {"question": "???", "answer": "unusable question"},
             {"question": "Do you ship abroad", "answer": "Yes, to 40 countries."}]
    response = await _warm(client, company, agent["id"], pairs)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "completed", "pairs_stored": 3, "pairs_errored": 1, "pairs_total": 4}
    hit = await _ask(client, company, runtime, agent["id"], "do you ship abroad?")
    assert hit["reply"] == "Yes, to 40 countries."
    await _ask(client, company, runtime, agent["id"], "Can I pay in cash?")
    second = await create_agent(client, company)
    assert (await _warm(client, company, second["id"], pairs[:1])).status_code == 200
    stats = await client.get("/v1/cache/stats", headers=company.headers)
    assert stats.status_code == 200
    # First agent: 2 warmed + 1 generated; second: 1 warmed. One hit, one miss.
    body = stats.json()
    assert {k: body[k] for k in ("status", "index_name", "num_docs", "num_records", "indexing", "hits", "misses",
                                 "hit_rate")} == {
        "status": "ready", "index_name": "ix_semantic_cache_embedding_hnsw", "num_docs": 4, "num_records": 4,
        "indexing": False, "hits": 1, "misses": 1, "hit_rate": 0.5}
    assert sorted((a["agent_id"], a["num_docs"], a["num_records"]) for a in body["by_agent"]) == sorted(
        [(agent["id"], 3, 3), (second["id"], 1, 1)])
    # This worker loaded the first agent's scope for its lookups (the two warmed entries), and the reply
    # it stored itself joined its copy at once; not the second's, which nothing has looked up.
    assert body["hot_index"] == {"enabled": True, "state": "complete", "scopes": 1, "entries": 3}
    await client.patch(f"/v1/agents/{agent['id']}", headers=company.headers, json={"system_prompt": "New."})
    after_change = (await client.get("/v1/cache/stats", headers=company.headers)).json()
    assert after_change["num_docs"] == 1 and after_change["num_records"] == 4
    assert {a["agent_id"]: a["num_docs"] for a in after_change["by_agent"]} == {agent["id"]: 0, second["id"]: 1}
    foreign = await client.delete("/v1/cache/flush", headers=other_tenant.headers,
                                  params={"company_id": str(company.company_id)})
    assert foreign.status_code == 404
    foreign_agent = await client.delete("/v1/cache/flush", headers=other_tenant.headers,
                                        params={"company_id": str(other_tenant.company_id), "agent_id": agent["id"]})
    assert foreign_agent.status_code == 404
    flushed = await client.delete("/v1/cache/flush", headers=company.headers,
                                  params={"company_id": str(company.company_id), "agent_id": agent["id"]})
    assert flushed.status_code == 200 and flushed.json() == {"status": "flushed", "entries_deleted": 3}
    assert (await client.get("/v1/cache/stats", headers=company.headers)).json()["num_records"] == 1


async def test_flush_of_a_whole_company_and_forget_customer(client: httpx.AsyncClient, tenant: Tenant,
                                                            runtime: Runtime, llm: ScriptedLLM) -> None:
    company = await make_tenant(runtime)
    first, second = await create_agent(client, company), await create_agent(client, company)
    await _ask(client, company, runtime, first["id"], "Can I pay in cash?", customer_id="leaving")
    await _ask(client, company, runtime, second["id"], "Can I pay in cash?", customer_id="staying")
    assert await _cache(runtime).forget_customer(company_id=company.company_id, customer_id="leaving") == 1
    assert (await _ask(client, company, runtime, first["id"], "Can I pay in cash?"))["cached"] is False
    await _warm(client, company, second["id"], [{"question": "Do you ship abroad?", "answer": "Yes."}])
    flushed = await client.delete("/v1/cache/flush", headers=company.headers,
                                  params={"company_id": str(company.company_id)})
    assert flushed.json() == {"status": "flushed", "entries_deleted": 3}
    assert (await _ask(client, company, runtime, second["id"], "Do you ship abroad?"))["cached"] is False


async def test_endpoint_errors(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                               runtime: Runtime) -> None:
    agent = await create_agent(client, tenant)
    pair = [{"question": "q?", "answer": "a"}]
    assert (await client.get("/v1/cache/stats")).status_code == 401
    assert (await client.post("/v1/cache/warm", json={})).status_code == 401
    chat_only = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['chat'])}"}
    assert (await client.get("/v1/cache/stats", headers=chat_only)).status_code == 403
    assert (await client.delete("/v1/cache/flush", headers=chat_only,
                                params={"company_id": str(tenant.company_id)})).status_code == 403
    # Another company's agent or company id: 404, nothing stored.
    assert (await _warm(client, other_tenant, agent["id"], pair)).status_code == 404
    assert (await _warm(client, other_tenant, agent["id"], pair, company_id=tenant.company_id)).status_code == 404
    assert await _entries(runtime, agent["id"]) == []
    bad = await client.post("/v1/cache/warm", headers=tenant.headers, json={
        "company_id": str(tenant.company_id), "agent_id": agent["id"], "pairs": [{"question": "", "answer": "a"}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "pairs", 0, "question"]
    empty = await client.post("/v1/cache/warm", headers=tenant.headers, json={
        "company_id": str(tenant.company_id), "agent_id": agent["id"], "pairs": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "pairs"]
    not_uuid = await client.delete("/v1/cache/flush", headers=tenant.headers, params={"company_id": "nope"})
    assert not_uuid.status_code == 422 and not_uuid.json()["detail"][0]["loc"] == ["query", "company_id"]
    missing = await client.delete("/v1/cache/flush", headers=tenant.headers)
    assert missing.status_code == 422
    garbage = await client.post("/v1/cache/warm", headers=tenant.headers, content=b"{not json")
    assert garbage.status_code == 422


@pytest.mark.redis
async def test_workers_sharing_redis_see_each_others_writes(client: httpx.AsyncClient, tenant: Tenant,
                                                            runtime: Runtime, redis_url: str) -> None:
    """Two components with their own hot indexes, as two workers would have, kept coherent by Redis."""
    agent = await create_agent(client, tenant)
    backend = RedisCacheBackend(redis_url)
    try:
        shared = replace(runtime, cache=backend, components={})
        worker_a, worker_b = SemanticCache(shared), SemanticCache(shared)
        async with runtime.database.session() as session:
            config = await build_config(session, tenant.company_id, uuid.UUID(agent["id"]))
        assert (await worker_b.decide(agent=config, message="Do you ship abroad?")).hit is None
        await worker_a.warm(config, [("Do you ship abroad?", "Yes.")])
        hit = (await worker_b.decide(agent=config, message="Do you ship abroad?")).hit
        assert hit is not None and hit.answer == "Yes."
        await worker_a.warm(config, [("Do you ship abroad?", "Yes, to 40 countries.")])
        hit = (await worker_b.decide(agent=config, message="Do you ship abroad?")).hit
        assert hit is not None and hit.answer == "Yes, to 40 countries."
        await worker_a.flush(tenant.company_id, config.id)
        assert (await worker_b.decide(agent=config, message="Do you ship abroad?")).hit is None
    finally:
        await backend.close()


async def test_a_refresh_finds_a_row_committed_out_of_order(client: httpx.AsyncClient, tenant: Tenant,
                                                            runtime: Runtime) -> None:
    """A slower transaction commits a lower sequence number after a faster one: the refresh still finds it,
    and it fetches only the rows its copy lacks."""
    agent = await create_agent(client, tenant)
    shared = replace(runtime, components={})
    reader, writer = SemanticCache(shared), SemanticCache(shared)
    async with runtime.database.session() as session:
        config = await build_config(session, tenant.company_id, uuid.UUID(agent["id"]))
    await writer.warm(config, [("Do you ship abroad?", "Yes.")])
    assert (await reader.decide(agent=config, message="Do you ship abroad?")).hit is not None
    vector = await runtime.embedder.embed_query("Can I pay in cash?")

    def row(question: str, answer: str) -> dict[str, Any]:
        return {"company_id": tenant.company_id, "agent_id": config.id, "origin": "warmed",
                "config_version": config.config_version, "knowledge_version": 0, "question": question,
                "normalized_question": normalize(question), "answer": answer, "embedding": vector,
                "customer_id": None, "conversation_id": None, "reply_message_id": None, "expires_at": None,
                "metadata_": {}}

    async with runtime.database.session() as slow:  # takes its sequence number first, commits last
        [(_, slow_seq)] = await SemanticCache._upsert_in(slow, [row("Can I pay in cash?", "No.")])
        [(_, fast_seq)] = await writer._upsert([row("Do you deliver on Sunday?", "Yes.")])
        assert fast_seq > slow_seq
        await writer._changed([config.id], deleted=False)
        assert (await reader.decide(agent=config, message="Do you deliver on Sunday?")).hit is not None
    await writer._changed([config.id], deleted=False)
    hit = (await reader.decide(agent=config, message="Can I pay in cash?")).hit
    assert hit is not None and hit.answer == "No."


async def test_store_rules_on_the_component(runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    async with runtime.database.session() as session:
        config = await build_config(session, tenant.company_id, uuid.UUID(agent["id"]))
    base = CompletedTurn(company_id=tenant.company_id, agent=config, conversation_id=uuid.uuid4(),
                         customer_id="c", customer_message_id=uuid.uuid4(), reply_message_id=uuid.uuid4(),
                         message="Do you sell gift cards?", reply="Yes, from 10 euros.")
    cache = _cache(runtime)
    assert await cache.refusal(replace(base, actions_executed=["lookup"])) == "a tool ran"
    assert await cache.refusal(replace(base, memory_fact_ids=[uuid.uuid4()])) == "customer memory was used"
    history = [HistoryTurn("customer", "Hi"), HistoryTurn("assistant", "Hello")]
    assert await cache.refusal(replace(base, message="and those?", history=history)) == "depends on earlier turns"
    assert await cache.refusal(base) is None

    async def stored() -> int:
        async with runtime.database.session() as session:
            return int(await session.scalar(select(func.count()).select_from(SemanticCacheEntry)
                                            .where(SemanticCacheEntry.agent_id == config.id)) or 0)

    # A turn whose message is gone (the customer was forgotten while the reply was being stored) is not
    # brought back as a cache entry.
    await cache.store(base)
    assert await stored() == 0
    async with runtime.database.session() as session:
        await conversation_store.open_conversation(session, company_id=tenant.company_id, agent_id=config.id,
                                                   conversation_id=base.conversation_id, customer_id="c",
                                                   channel="web")
        message = await conversation_store.add_customer_message(
            session, company_id=tenant.company_id, conversation_id=base.conversation_id, agent_id=config.id,
            customer_id="c", content=base.message, channel="web", request_id="r-1", metadata={})
    await cache.store(replace(base, customer_message_id=message.id))
    assert await stored() == 1


async def test_the_database_index_decides_like_the_in_process_one_and_expired_entries_are_gone(
        runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    async with runtime.database.session() as session:
        config = await build_config(session, tenant.company_id, uuid.UUID(agent["id"]))
    hot, database = _cache(runtime), SemanticCache(runtime, hot_index=False)
    await hot.warm(config, [("Where is order ORD-1234?", "It left yesterday."),
                            ("Do you ship abroad?", "Yes, to 40 countries.")])
    for component in (hot, database):
        exact = await component.decide(agent=config, message="do you ship abroad")
        assert exact.reason == "exact" and exact.hit is not None and exact.hit.answer == "Yes, to 40 countries."
        near = await component.decide(agent=config, message="Do you ship your products abroad?")
        assert near.reason == "semantic" and near.hit is not None
        guarded = await component.decide(agent=config, message="Where is order ORD-5678?")
        assert guarded.hit is None and guarded.reason == "guard:numbers"
    async with runtime.database.session() as session:
        await session.execute(update(SemanticCacheEntry).where(SemanticCacheEntry.agent_id == config.id)
                              .values(expires_at=func.now() - timedelta(seconds=1)))
    # A worker loading the scope now (and the database path) no longer sees them.
    for component in (SemanticCache(runtime), database):
        assert (await component.decide(agent=config, message="do you ship abroad")).hit is None

"""Who a conversation belongs to: one customer of one company, even when first messages race."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from cortex.kit.runtime import Runtime
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent, make_tenant


async def _history(client: httpx.AsyncClient, tenant: Tenant, conversation: uuid.UUID) -> list[tuple[str, str]]:
    response = await client.get(f"/v1/conversations/{conversation}/messages", headers=tenant.headers,
                                params={"limit": 100})
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["items"]]


async def test_racing_first_messages_from_two_customers_give_the_conversation_to_one(
        client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    senders = ["alice", "bob"] * 3
    responses = await asyncio.gather(*(
        chat(client, tenant, agent["id"], f"private note {i} of {customer}", conversation_id=conversation,
             customer_id=customer) for i, customer in enumerate(senders)))
    answered = {customer for customer, r in zip(senders, responses, strict=True) if r.status_code == 200}
    assert len(answered) == 1, [(c, r.status_code) for c, r in zip(senders, responses, strict=True)]
    [owner] = answered
    [loser] = set(senders) - answered
    for customer, response in zip(senders, responses, strict=True):
        if customer == loser:
            assert response.status_code == 422 and "conversation_id" in response.text, response.text
    stored = await _history(client, tenant, conversation)
    customer_lines = sorted(content for role, content in stored if role == "customer")
    assert customer_lines == sorted(f"private note {i} of {owner}" for i, c in enumerate(senders) if c == owner)
    assert not any(loser in content for _, content in stored)
    # The owner's next prompt carries the owner's turns only.
    assert (await chat(client, tenant, agent["id"], "and now?", conversation_id=conversation,
                       customer_id=owner)).status_code == 200
    prompt = " ".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert f"of {owner}" in prompt and f"of {loser}" not in prompt
    listed = (await client.get("/v1/conversations", params={"customer_id": loser}, headers=tenant.headers)).json()
    assert listed["items"] == []


async def test_racing_first_messages_without_a_model_give_the_conversation_to_one(
        client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    senders = ["carol", "dave"] * 3
    responses = await asyncio.gather(*(
        chat(client, tenant, agent["id"], f"hello from {customer}", conversation_id=conversation,
             customer_id=customer) for customer in senders))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 200, 422, 422, 422], codes
    [owner] = {c for c, r in zip(senders, responses, strict=True) if r.status_code == 200}
    stored = await _history(client, tenant, conversation)
    assert {content for role, content in stored if role == "customer"} == {f"hello from {owner}"}


async def test_racing_first_messages_answered_from_the_cache_give_the_conversation_to_one(
        client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    warmed = await client.post("/v1/cache/warm", headers=tenant.headers, json={
        "company_id": str(tenant.company_id), "agent_id": agent["id"],
        "pairs": [{"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."}]})
    assert warmed.status_code == 200, warmed.text
    conversation = uuid.uuid4()
    senders = ["erin", "frank"] * 3
    responses = await asyncio.gather(*(
        chat(client, tenant, agent["id"], "Do you ship abroad?", conversation_id=conversation, customer_id=customer)
        for customer in senders))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 422, 422, 422]
    assert all(r.json()["cached"] for r in responses if r.status_code == 200)
    [owner] = {c for c, r in zip(senders, responses, strict=True) if r.status_code == 200}
    page = (await client.get(f"/v1/conversations/{conversation}/messages", headers=tenant.headers)).json()
    assert page["total_count"] == 6  # three questions and their cached replies, all the owner's
    assert {m["role"] for m in page["items"]} == {"customer", "assistant"}
    listed = (await client.get("/v1/conversations", params={"customer_id": owner}, headers=tenant.headers)).json()
    assert [c["id"] for c in listed["items"]] == [str(conversation)]


async def test_two_companies_starting_the_same_conversation_id_at_once_each_keep_their_own(
        client: httpx.AsyncClient, runtime: Runtime, llm: ScriptedLLM) -> None:
    tenants = [await make_tenant(runtime) for _ in range(2)]
    agents = [await create_agent(client, t) for t in tenants]
    conversation = uuid.uuid4()
    responses = await asyncio.gather(*(
        chat(client, t, a["id"], f"note for company {n}", conversation_id=conversation, customer_id="same-customer")
        for n, (t, a) in enumerate(zip(tenants, agents, strict=True))))
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    for n, t in enumerate(tenants):
        assert await _history(client, t, conversation) == [
            ("customer", f"note for company {n}"), ("assistant", f"echo: note for company {n}")]
        listed = (await client.get("/v1/conversations", headers=t.headers)).json()
        assert [c["id"] for c in listed["items"]] == [str(conversation)]


async def test_a_conversation_id_another_company_uses_works_normally(
        client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, llm: ScriptedLLM) -> None:
    theirs, ours = await create_agent(client, other_tenant), await create_agent(client, tenant)
    conversation = uuid.uuid4()
    assert (await chat(client, other_tenant, theirs["id"], "their secret", conversation_id=conversation,
                       customer_id="them")).status_code == 200
    for text in ("first", "second"):
        response = await chat(client, tenant, ours["id"], text, conversation_id=conversation, customer_id="us")
        assert response.status_code == 200, response.text
    prompt = " ".join(str(m["content"]) for m in llm.requests[-1]["messages"])
    assert "first" in prompt and "their secret" not in prompt
    assert await _history(client, tenant, conversation) == [
        ("customer", "first"), ("assistant", "echo: first"), ("customer", "second"), ("assistant", "echo: second")]
    assert await _history(client, other_tenant, conversation) == [
        ("customer", "their secret"), ("assistant", "echo: their secret")]
    # Each company's customers are its own: a different customer of the other company is still refused there.
    refused = await chat(client, other_tenant, theirs["id"], "hi", conversation_id=conversation, customer_id="us")
    assert refused.status_code == 422 and "conversation_id" in refused.text

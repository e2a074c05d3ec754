"""Conversation history endpoints: the stored turns, per company only."""

from __future__ import annotations

import uuid

import httpx

from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent


async def test_history_lists_turns_in_order_for_the_owner_only(client: httpx.AsyncClient, tenant: Tenant,
                                                               other_tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    for text in ("one", "two"):
        assert (await chat(client, tenant, agent["id"], text, conversation_id=conversation,
                           customer_id="cust-h")).status_code == 200
    page = (await client.get(f"/v1/conversations/{conversation}/messages", headers=tenant.headers)).json()
    assert page["total_count"] == 4
    assert [(m["role"], m["content"]) for m in page["items"]] == [
        ("customer", "one"), ("assistant", "echo: one"), ("customer", "two"), ("assistant", "echo: two")]
    assert page["items"][1]["model_used"] and page["items"][1]["step_timings"]["agent_compiler"] > 0
    listed = (await client.get("/v1/conversations", params={"customer_id": "cust-h"}, headers=tenant.headers)).json()
    assert [c["id"] for c in listed["items"]] == [str(conversation)]
    assert (await client.get(f"/v1/conversations/{conversation}/messages",
                             headers=other_tenant.headers)).status_code == 404
    theirs = (await client.get("/v1/conversations", headers=other_tenant.headers)).json()
    assert str(conversation) not in [c["id"] for c in theirs["items"]]

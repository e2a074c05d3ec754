"""A scripted run of chats: a text reply, a tool call, a semantic cache hit and a miss."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from cortex.agents.schemas import AgentConfig
from cortex.kit.runtime import Runtime
from cortex.pipeline.ports import SEMANTIC_CACHE, CacheHit, CompletedTurn, HistoryTurn
from tests.conftest import SCRIPTED_MODEL
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall
from tests.support import Tenant, chat, create_action, create_agent
from tests.webhook_target import WebhookTarget

CACHED_QUESTION = "What are your opening hours?"
PRICES = {SCRIPTED_MODEL: {"input_per_million": 1000.0, "output_per_million": 4000.0}}


class OneAnswerCache:
    """A test-only SemanticCachePort: one known question hits, anything else misses."""

    available = True

    def __init__(self) -> None:
        self.lookups = 0

    async def lookup(self, *, agent: AgentConfig, message: str, history: list[HistoryTurn],
                     customer_id: str) -> CacheHit | None:
        self.lookups += 1
        if message == CACHED_QUESTION:
            return CacheHit(entry_id=uuid.uuid4(), answer="We open at nine.", similarity=0.97,
                            matched_question=CACHED_QUESTION)
        return None

    async def store(self, turn: CompletedTurn) -> None:
        return None

    async def forget_customer(self, *, company_id: uuid.UUID, customer_id: str) -> int:
        return 0


@contextmanager
def semantic_cache(runtime: Runtime) -> Iterator[OneAnswerCache]:
    saved = runtime.components.get(SEMANTIC_CACHE)
    cache = OneAnswerCache()
    runtime.components[SEMANTIC_CACHE] = cache
    try:
        yield cache
    finally:
        if saved is None:
            runtime.components.pop(SEMANTIC_CACHE, None)
        else:
            runtime.components[SEMANTIC_CACHE] = saved


@dataclass
class Run:
    agent: dict[str, Any]
    action: dict[str, Any]
    responses: list[httpx.Response]


async def scripted_run(client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM,
                       webhooks: WebhookTarget) -> Run:
    """Four chats: text (1 model call), tool call (2 calls, 1 webhook), cache hit, cache miss (1 call)."""
    action = await create_action(
        client, tenant, name="order_status", description="Look up an order", method="GET",
        webhook_url=webhooks.base_url + "/orders", parameters_schema={
            "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})
    agent = await create_agent(client, tenant, action_ids=[action["id"]], settings={"model_prices": PRICES})
    llm.queue(Reply(text="Hello there.", prompt_tokens=100, completion_tokens=10),
              Reply(tool_calls=[ToolCall("order_status", '{"order_id": "A1"}')], prompt_tokens=200,
                    completion_tokens=20),
              Reply(text="It ships today.", prompt_tokens=300, completion_tokens=30),
              Reply(text="Yes, to 40 countries.", prompt_tokens=400, completion_tokens=40))
    responses = [
        await chat(client, tenant, agent["id"], "Hi!"),
        await chat(client, tenant, agent["id"], "Where is my order A1?"),
        await chat(client, tenant, agent["id"], CACHED_QUESTION),
        await chat(client, tenant, agent["id"], "Do you ship abroad?"),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
    assert [r.json()["cached"] for r in responses] == [False, False, True, False]
    assert responses[1].json()["actions_executed"] == ["order_status"]
    return Run(agent, action, responses)

"""Provider faults through the gateway and the chat: malformed answers, empty replies, the circuit breaker."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cortex.db.models import Message
from cortex.kit.errors import BadGateway, ServiceUnavailable
from cortex.kit.runtime import Runtime
from tests.conftest import SCRIPTED_MODEL
from tests.scripted_llm import Reply, ScriptedLLM, refused_api_base
from tests.support import Tenant, chat, create_agent

USER = [{"role": "user", "content": "Where is my parcel?"}]
FALLBACK = "openai/fallback-model"
FAQS = [{"question": "Where is my parcel?", "answer": "Track it at example.com/track with your order number."}]


async def test_an_answer_without_choices_is_502_not_a_crash(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(raw={"id": "x", "object": "chat.completion", "choices": []}))
    with pytest.raises(BadGateway):
        await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)
    assert len(llm.requests) == 1  # not retried on the same model: it would answer the same


async def test_a_malformed_answer_goes_to_the_fallback_model(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(raw={"choices": []}), Reply(text="from fallback"))
    result = await runtime.llm.complete(models=[SCRIPTED_MODEL, FALLBACK], messages=USER)
    assert (result.text, result.model) == ("from fallback", FALLBACK)


async def test_an_empty_reply_is_tried_on_the_fallback_model(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(text=""), Reply(text="the fallback answers"))
    result = await runtime.llm.complete(models=[SCRIPTED_MODEL, FALLBACK], messages=USER)
    assert (result.text, result.model) == ("the fallback answers", FALLBACK)
    assert [r["model"] for r in llm.requests] == ["scripted-model", "fallback-model"]


async def test_chat_never_sends_an_empty_reply(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                                               llm: ScriptedLLM) -> None:
    """Both models answer empty (offline_fallback off): the offline responder answers, and it is stored."""
    agent = await create_agent(client, tenant, faqs=FAQS, settings={
        "pinned_tier": "nano", "fallback_models": {"nano": FALLBACK}, "cache": {"enabled": False}})
    llm.queue(Reply(text="   "), Reply(text=""))
    conversation = uuid.uuid4()
    response = await chat(client, tenant, agent["id"], "Where is my parcel?", conversation_id=conversation)
    assert response.status_code == 200, response.text
    assert response.json()["reply"] == FAQS[0]["answer"] and response.json()["model_used"] == "offline"
    assert len(llm.requests) == 2
    llm.queue(Reply(text=""), Reply(text=""))
    unknown = await chat(client, tenant, agent["id"], "Can I bring my giraffe?", conversation_id=conversation)
    assert unknown.status_code == 200 and unknown.json()["reply"].startswith("I'm sorry")
    async with runtime.database.session() as session:
        stored = list(await session.scalars(select(Message).where(Message.conversation_id == conversation)))
    assert sorted((m.role, m.status) for m in stored) == [("assistant", "ok")] * 2 + [("customer", "ok")] * 2
    assert all(m.content.strip() for m in stored)


async def test_chat_with_a_malformed_provider_is_502_or_offline(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(raw={"choices": []}))
    plain = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    failed = await chat(client, tenant, plain["id"], "Where is my parcel?")
    assert failed.status_code == 502 and "unusable" in failed.json()["detail"]
    llm.queue(Reply(raw={"choices": []}))
    fallback = await create_agent(client, tenant, faqs=FAQS,
                                  settings={"offline_fallback": True, "cache": {"enabled": False}})
    answered = await chat(client, tenant, fallback["id"], "Where is my parcel?")
    assert answered.status_code == 200 and answered.json()["model_used"] == "offline"


async def test_the_breaker_fails_fast_to_the_fallback_then_closes(runtime: Runtime, llm: ScriptedLLM) -> None:
    settings = runtime.settings
    saved = (settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds, settings.llm_max_retries)
    settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds, settings.llm_max_retries = 3, 1.0, 0
    try:
        down = {"scripted-model": True}

        def script(body: dict[str, Any]) -> Reply:
            if down.get(body["model"]):
                return Reply(status=503)
            return Reply(text=f"answered by {body['model']}")

        llm.script = script
        for _ in range(3):  # three faults of the primary, each answered by the fallback
            assert (await runtime.llm.complete(models=[SCRIPTED_MODEL, FALLBACK], messages=USER)).model == FALLBACK
        assert runtime.llm.breaker.state(runtime.llm.circuit_key(SCRIPTED_MODEL)) == "open"
        llm.requests.clear()
        result = await runtime.llm.complete(models=[SCRIPTED_MODEL, FALLBACK], messages=USER)
        assert result.model == FALLBACK and [r["model"] for r in llm.requests] == ["fallback-model"]
        with pytest.raises(ServiceUnavailable) as paused:  # no fallback: 503 at once, with Retry-After
            await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)
        assert paused.value.headers == {"Retry-After": "1"}
        await asyncio.sleep(1.0)
        down.clear()  # the provider is back: the probe after the cooldown finds it
        llm.requests.clear()
        healed = await runtime.llm.complete(models=[SCRIPTED_MODEL, FALLBACK], messages=USER)
        assert healed.model == SCRIPTED_MODEL and healed.text == "answered by scripted-model"
        assert runtime.llm.breaker.state(runtime.llm.circuit_key(SCRIPTED_MODEL)) == "closed"
    finally:
        settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds, settings.llm_max_retries = saved


async def test_a_refusing_provider_opens_its_circuit(runtime: Runtime, llm: ScriptedLLM) -> None:
    runtime.settings.llm_api_base = refused_api_base()
    saved = runtime.settings.llm_breaker_failures
    runtime.settings.llm_breaker_failures = 2
    try:
        for _ in range(1):  # one call: two attempts (llm_max_retries 1), both refused
            with pytest.raises(ServiceUnavailable, match="unreachable"):
                await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailable, match="paused") as paused:
            await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)
        assert time.perf_counter() - started < 0.1 and "Retry-After" in (paused.value.headers or {})
    finally:
        runtime.settings.llm_breaker_failures = saved

"""The OpenAI-compatible API driven by real clients (the official `openai` SDK, LiteLLM) over loopback."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import litellm
import openai
import pytest
from sqlalchemy import func, select

from cortex.db.models import Conversation, Message
from cortex.kit.runtime import Runtime
from tests.live_cortex import LiveCortex
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall
from tests.support import Tenant, create_action, create_agent, make_key
from tests.webhook_target import WebhookTarget


def _sync(live: LiveCortex, tenant: Tenant, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url + "/v1", api_key=tenant.api_key,
                         **{"max_retries": 0, **options})


def _async(live: LiveCortex, tenant: Tenant, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=live.base_url + "/v1", api_key=tenant.api_key,
                              **{"max_retries": 0, **options})


def _slug() -> str:
    return "agent-" + uuid.uuid4().hex[:8]


async def _count(runtime: Runtime, *where: Any) -> int:
    async with runtime.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(*where)) or 0)


async def test_sync_sdk_plain_answer_with_usage_and_the_cortex_object(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    slug = _slug()
    await create_agent(client, tenant, slug=slug, settings={"cache": {"enabled": False}, "max_output_tokens": 300})
    live_llm.queue(Reply(text="Hello there!", prompt_tokens=50, completion_tokens=3))
    completion = _sync(live, tenant).chat.completions.create(
        model=slug, user="sdk-user", max_tokens=5_000, temperature=0.7,
        messages=[{"role": "system", "content": "ignored: the agent has its own prompt"},
                  {"role": "user", "content": "My name is Ada."},
                  {"role": "assistant", "content": "Nice to meet you, Ada."},
                  {"role": "user", "content": "Say hello"}])
    assert completion.object == "chat.completion" and completion.model == slug
    assert completion.id.startswith("chatcmpl-") and completion.created > 0
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.message.content == "Hello there!"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        50, 3, 53)
    cortex = completion.model_extra["cortex"] if completion.model_extra else {}
    assert cortex["cached"] is False and cortex["model_used"] and cortex["actions_executed"] == []
    assert cortex["step_timings"]["agent_compiler"] > 0
    sent = live_llm.requests[-1]
    # No conversation given: the request's earlier messages are the history (its system message is not).
    assert [(m["role"], m["content"]) for m in sent["messages"][1:]] == [
        ("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "Say hello")]
    assert "ignored: the agent" not in sent["messages"][0]["content"]
    assert sent["max_tokens"] == 300 and sent["temperature"] == 0.7  # capped at the agent's own limit
    conversation = uuid.UUID(cortex["conversation_id"])
    assert await _count(runtime, Message.conversation_id == conversation) == 2
    async with runtime.database.session() as session:
        stored = await session.get(Conversation, (tenant.company_id, conversation))
    assert stored is not None and stored.customer_id == "sdk-user" and stored.company_id == tenant.company_id


async def test_with_a_conversation_cortex_keeps_the_history(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    sdk = _async(live, tenant)
    conversation = str(uuid.uuid4())
    await sdk.chat.completions.create(model=agent["id"], messages=[{"role": "user", "content": "I live in Haifa."}],
                                      user="conv-user", metadata={"conversation_id": conversation})
    await sdk.chat.completions.create(
        model=agent["id"], user="conv-user", extra_headers={"X-Cortex-Conversation-Id": conversation},
        messages=[{"role": "user", "content": "made-up earlier turn"}, {"role": "user", "content": "Where do I live?"}])
    sent = live_llm.requests[-1]["messages"][1:]
    assert [m["content"] for m in sent] == ["I live in Haifa.", "echo: I live in Haifa.", "Where do I live?"]
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.chat.completions.create(model=agent["id"], messages=[{"role": "user", "content": "x"}],
                                          metadata={"conversation_id": "not-a-uuid"})
    assert bad.value.status_code == 400 and bad.value.body["param"] == "metadata.conversation_id"  # type: ignore[index]


async def test_async_sdk_stream_with_include_usage(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    slug = _slug()
    await create_agent(client, tenant, slug=slug, settings={"cache": {"enabled": False}})
    live_llm.queue(Reply(text="Streaming works word by word.", prompt_tokens=40, completion_tokens=5))
    stream = await _async(live, tenant).chat.completions.create(
        model=slug, messages=[{"role": "user", "content": "Stream please"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert {c.id for c in chunks} == {chunks[0].id} and {c.created for c in chunks} == {chunks[0].created}
    assert all(c.object == "chat.completion.chunk" and c.model == slug for c in chunks)
    *with_choices, last = chunks
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens == 45
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in with_choices)
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == "Streaming works word by word."
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert sum(1 for c in with_choices if c.choices[0].delta.content) == 5  # one chunk per streamed word


async def test_a_tool_using_agent_through_the_sdk(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    action = await create_action(client, tenant, name="order_status", webhook_url=webhooks.base_url + "/orders")
    slug = _slug()
    await create_agent(client, tenant, slug=slug, action_ids=[action["id"]])
    live_llm.queue(Reply(tool_calls=[ToolCall("order_status", "{}")]), Reply(text="It ships today."))
    completion = await _async(live, tenant).chat.completions.create(
        model=slug, messages=[{"role": "user", "content": "Where is my order?"}])
    assert completion.choices[0].message.content == "It ships today."
    assert completion.model_extra and completion.model_extra["cortex"]["actions_executed"] == ["order_status"]
    assert len(webhooks.calls) == 1
    live_llm.queue(Reply(tool_calls=[ToolCall("order_status", "{}")]), Reply(text="Still today."))
    stream = await _async(live, tenant).chat.completions.create(
        model=slug, messages=[{"role": "user", "content": "And now?"}], stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Still today."
    with pytest.raises(openai.BadRequestError) as refused:
        await _async(live, tenant).chat.completions.create(
            model=slug, messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "mine", "parameters": {"type": "object"}}}])
    assert refused.value.body["param"] == "tools" and "actions" in refused.value.message  # type: ignore[index]


async def test_a_cache_hit_answers_plain_and_streamed(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    slug = _slug()
    await create_agent(client, tenant, slug=slug)
    live_llm.queue(Reply(text="We are open from nine to five."))
    sdk = _async(live, tenant)
    first = await sdk.chat.completions.create(model=slug, messages=[{"role": "user", "content": "Opening hours?"}],
                                              user="cache-1")
    assert first.model_extra and first.model_extra["cortex"]["cached"] is False
    live.settle()
    calls = len(live_llm.requests)
    again = await sdk.chat.completions.create(model=slug, messages=[{"role": "user", "content": "opening hours"}],
                                              user="cache-2")
    assert again.model_extra and again.model_extra["cortex"]["cached"] is True
    assert again.choices[0].message.content == "We are open from nine to five."
    stream = await sdk.chat.completions.create(model=slug, messages=[{"role": "user", "content": "Opening hours"}],
                                               user="cache-3", stream=True)
    contents = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert contents == ["We are open from nine to five."] and len(live_llm.requests) == calls


async def test_errors_have_the_openai_shape_and_status(
        client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, live: LiveCortex,
        live_llm: ScriptedLLM) -> None:
    theirs = await create_agent(client, other_tenant, slug="theirs")
    with pytest.raises(openai.NotFoundError) as unknown:
        await _async(live, tenant).chat.completions.create(model=theirs["id"],
                                                           messages=[{"role": "user", "content": "hi"}])
    error = unknown.value
    assert error.status_code == 404 and error.code == "model_not_found" and error.param == "model"
    assert error.type == "not_found_error" and error.request_id
    assert set(error.response.json()) == {"error"}
    assert set(error.response.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.AuthenticationError) as bad_key:
        openai.OpenAI(base_url=live.base_url + "/v1", api_key="ctx_not_a_real_key", max_retries=0).models.list()
    assert bad_key.value.status_code == 401 and bad_key.value.type == "authentication_error"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        await _async(live, tenant).chat.completions.create(model=theirs["id"], messages=[])
    assert invalid.value.status_code == 422 and invalid.value.param == "messages"
    mine = await create_agent(client, tenant)
    live_llm.script = lambda body: Reply(status=503)
    with pytest.raises(openai.InternalServerError) as down:
        await _async(live, tenant).chat.completions.create(model=mine["id"], stream=True,
                                                           messages=[{"role": "user", "content": "hi"}])
    assert down.value.status_code == 503 and down.value.type == "server_error"
    assert down.value.code == "service_unavailable"


async def test_models_lists_the_companys_agents_only(
        client: httpx.AsyncClient, other_tenant: Tenant, live: LiveCortex) -> None:
    named = await create_agent(client, other_tenant, slug="lister")
    plain = await create_agent(client, other_tenant)
    sdk = _sync(live, other_tenant)
    models = sdk.models.list()
    ids = [m.id for m in models.data]
    assert "lister" in ids and plain["id"] in ids and named["id"] not in ids
    assert all(m.object == "model" and m.owned_by == "cortex" and m.created > 0 for m in models.data)
    assert sdk.models.retrieve("lister").id == "lister"
    raw = sdk.models.with_raw_response.list().http_response.json()
    assert raw["object"] == "list" and set(raw["data"][0]) == {"id", "object", "created", "owned_by"}


async def test_a_retried_request_with_one_idempotency_key_is_one_turn(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    slug = _slug()
    await create_agent(client, tenant, slug=slug, settings={"cache": {"enabled": False}})
    # The first attempt outlives the client's timeout; the SDK retries it with the same key.
    live_llm.queue(Reply(text="Only once.", delay_seconds=1.5))
    customer = "retry-" + uuid.uuid4().hex[:8]
    key = "idem-" + uuid.uuid4().hex
    sdk = _async(live, tenant, max_retries=2, timeout=1.0)
    completion = await sdk.chat.completions.create(
        model=slug, user=customer, messages=[{"role": "user", "content": "Charge me once"}],
        extra_headers={"Idempotency-Key": key})
    assert completion.choices[0].message.content == "Only once."
    assert len(live_llm.requests) == 1
    assert await _count(runtime, Message.customer_id == customer, Message.company_id == tenant.company_id) == 2
    # Later, the same key and body: the stored reply, streamed or not; another body with the key: 422.
    again = await _async(live, tenant).chat.completions.create(
        model=slug, user=customer, messages=[{"role": "user", "content": "Charge me once"}],
        extra_headers={"Idempotency-Key": key})
    assert again.id == completion.id and again.choices[0].message.content == "Only once."
    stream = await _async(live, tenant).chat.completions.create(
        model=slug, user=customer, messages=[{"role": "user", "content": "Charge me once"}], stream=True,
        extra_headers={"Idempotency-Key": key})
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Only once."
    with pytest.raises(openai.UnprocessableEntityError) as reused:
        await _async(live, tenant).chat.completions.create(
            model=slug, user=customer, messages=[{"role": "user", "content": "Charge me twice"}],
            extra_headers={"Idempotency-Key": key})
    assert reused.value.code == "idempotency_key_reused"
    assert len(live_llm.requests) == 1
    assert await _count(runtime, Message.customer_id == customer, Message.company_id == tenant.company_id) == 2


async def test_concurrent_requests_with_one_key_make_one_turn(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    slug = _slug()
    await create_agent(client, tenant, slug=slug, settings={"cache": {"enabled": False}})
    live_llm.queue(Reply(text="Exactly one.", delay_seconds=0.3))
    customer = "race-" + uuid.uuid4().hex[:8]
    sdk = _async(live, tenant)
    results = await asyncio.gather(*(sdk.chat.completions.create(
        model=slug, user=customer, messages=[{"role": "user", "content": "Once"}],
        extra_headers={"Idempotency-Key": "race-key-" + customer}) for _ in range(4)))
    assert {r.choices[0].message.content for r in results} == {"Exactly one."} and len({r.id for r in results}) == 1
    assert len(live_llm.requests) == 1
    assert await _count(runtime, Message.customer_id == customer, Message.company_id == tenant.company_id) == 2


async def test_litellm_as_a_client_plain_and_streamed(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    slug = _slug()
    await create_agent(client, tenant, slug=slug, settings={"cache": {"enabled": False}})
    base = live.base_url + "/v1"
    response = await litellm.acompletion(model=f"openai/{slug}", api_base=base, api_key=tenant.api_key,
                                         messages=[{"role": "user", "content": "Hi from LiteLLM"}])
    assert response.choices[0].message.content == "echo: Hi from LiteLLM"
    assert response.usage.total_tokens > 0
    stream = await litellm.acompletion(model=f"openai/{slug}", api_base=base, api_key=tenant.api_key, stream=True,
                                       messages=[{"role": "user", "content": "Stream from LiteLLM"}])
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(pieces) == "echo: Stream from LiteLLM" and len([p for p in pieces if p]) > 1
    with pytest.raises(litellm.NotFoundError):
        await litellm.acompletion(model="openai/no-such-agent", api_base=base, api_key=tenant.api_key,
                                  messages=[{"role": "user", "content": "hi"}], max_retries=0)


async def test_a_rate_limited_key_gets_an_openai_shaped_429(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex) -> None:
    slow_key = await make_key(runtime, tenant.company_id, ["chat"], rate_limit_per_minute=1)
    sdk = openai.OpenAI(base_url=live.base_url + "/v1", api_key=slow_key, max_retries=0)
    sdk.models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.models.list()
    error = limited.value
    assert error.status_code == 429 and error.type == "rate_limit_error" and error.code == "rate_limit_exceeded"
    assert error.response.headers["retry-after"] and error.request_id

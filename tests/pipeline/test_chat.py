"""POST /v1/chat end to end: real PostgreSQL, real LiteLLM calls to the scripted server, real webhooks."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import select, update

from cortex.app import create_app
from cortex.db.models import Agent, Message
from cortex.kit.runtime import Runtime
from cortex.pipeline.schemas import STEP_NAMES
from tests.conftest import SCRIPTED_MODEL
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall, refused_api_base
from tests.support import Tenant, chat, create_action, create_agent, make_key, run_jobs
from tests.webhook_target import WebhookTarget

FAQS = [{"question": "What are your opening hours?", "answer": "We are open 9:00-17:00, Sunday to Thursday."},
        {"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."}]


async def _messages(runtime: Runtime, conversation_id: uuid.UUID) -> list[Message]:
    async with runtime.database.session() as session:
        rows = await session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                                     .order_by(Message.created_at))
        return list(rows)


async def test_text_reply_has_the_exact_contract_and_is_stored(client: httpx.AsyncClient, tenant: Tenant,
                                                               runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, faqs=FAQS, system_prompt="You work for {{ agent_name }}.")
    llm.queue(Reply(text="We open at nine.", prompt_tokens=120, completion_tokens=6))
    conversation = uuid.uuid4()
    response = await chat(client, tenant, agent["id"], "When do you open?", conversation_id=conversation)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"reply", "model_used", "cached", "actions_executed", "latency_ms", "tokens",
                         "context_tokens", "step_timings", "citations"}
    assert body["citations"] == []  # the agent has no knowledge source
    assert body["reply"] == "We open at nine." and body["model_used"] == SCRIPTED_MODEL
    assert body["cached"] is False and body["actions_executed"] == []
    assert body["tokens"] == {"input": 120, "output": 6, "cost_usd": 0.0}
    assert set(body["context_tokens"]) == {"before_compression", "after_compression", "savings_pct"}
    assert set(body["step_timings"]) == set(STEP_NAMES) - {"tool_followup_calls"} | {"tool_call_rounds"}
    timings = body["step_timings"]
    for step in ("config_load", "memory_recall", "token_optimizer", "model_router", "agent_compiler"):
        assert timings[step] > 0, step
    # No tool was called: the tool steps did not run.
    assert timings["tool_call_rounds"] == 0 and timings["tool_execution"] == 0
    system = llm.requests[-1]["messages"][0]
    assert system["role"] == "system" and f"You work for {agent['name']}." in system["content"]
    assert "What are your opening hours?" in system["content"]  # FAQs reach the prompt
    stored = await _messages(runtime, conversation)
    assert [(m.role, m.status) for m in stored] == [("customer", "ok"), ("assistant", "ok")]
    reply = stored[1]
    assert reply.model_used == SCRIPTED_MODEL and reply.tier and reply.tier_reason
    assert reply.tokens_input == 120 and reply.step_timings["agent_compiler"] > 0
    assert reply.request_id and reply.request_id == stored[0].request_id


async def test_history_feeds_the_next_turn(client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    await chat(client, tenant, agent["id"], "My name is Layla.", conversation_id=conversation)
    await chat(client, tenant, agent["id"], "What is my name?", conversation_id=conversation)
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "My name is Layla." and sent[2]["content"] == "echo: My name is Layla."


async def test_tool_call_runs_the_webhook_and_feeds_the_result_back(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    action = await create_action(
        client, tenant, name="order_status", description="Look up an order", method="GET",
        webhook_url=webhooks.base_url + "/api", path_template="/orders/{order_id}",
        query_schema={"type": "object", "properties": {"verbose": {"type": "boolean"}}},
        parameters_schema={"type": "object", "properties": {"order_id": {"type": "string"},
                                                             "verbose": {"type": "boolean"}},
                           "required": ["order_id"]},
        auth_type="bearer", auth_credentials={"token": "secret-token-123"})
    agent = await create_agent(client, tenant, action_ids=[action["id"]])
    llm.queue(Reply(tool_calls=[ToolCall("order_status", '{"order_id": "ORD 1/2", "verbose": true}')]),
              Reply(text="Your order is on its way."))
    conversation = uuid.uuid4()
    response = await chat(client, tenant, agent["id"], "Where is my order ORD 1/2?", conversation_id=conversation)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reply"] == "Your order is on its way." and body["actions_executed"] == ["order_status"]
    # One round of tool calls: `tool_call_rounds` counts rounds, the other timings are milliseconds.
    assert body["step_timings"]["tool_execution"] > 0 and body["step_timings"]["tool_call_rounds"] == 1
    [call] = webhooks.calls
    # The argument is URL-quoted into the path: it cannot add path segments of its own.
    assert call.method == "GET" and call.raw_path == "/api/orders/ORD%201%2F2"
    assert call.query == {"verbose": "true"}
    assert call.headers["authorization"] == "Bearer secret-token-123"
    assert llm.requests[0]["tools"][0]["function"]["name"] == "order_status"
    tool_message = llm.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["status"] == 200
    stored = await _messages(runtime, conversation)
    record = stored[-1].tool_calls[0]
    assert record["name"] == "order_status" and record["status"] == 200 and record["size_bytes"] > 0
    assert "secret-token-123" not in json.dumps(stored[-1].tool_calls)
    assert stored[-1].tool_rounds == 1
    assert stored[-1].step_timings["tool_call_rounds"] == 1 and stored[-1].step_timings["tool_followup_calls"] > 0


async def test_after_five_rounds_the_model_must_answer_in_text(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    action = await create_action(client, tenant, name="ping", webhook_url=webhooks.base_url + "/ping")
    agent = await create_agent(client, tenant, action_ids=[action["id"]])

    def always_tools(body: dict[str, object]) -> Reply:
        if body.get("tools"):
            return Reply(tool_calls=[ToolCall("ping", "{}")])
        return Reply(text="Done after the tools.")

    llm.script = always_tools
    response = await chat(client, tenant, agent["id"], "Keep pinging")
    assert response.status_code == 200, response.text
    assert response.json()["reply"] == "Done after the tools."
    assert response.json()["step_timings"]["tool_call_rounds"] == 5
    assert len(llm.requests) == 6 and "tools" not in llm.requests[-1]
    assert len(webhooks.calls) == 5


async def test_malformed_tool_arguments_go_back_to_the_model(
        client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM, webhooks: WebhookTarget) -> None:
    action = await create_action(
        client, tenant, name="refund", webhook_url=webhooks.base_url + "/refund",
        parameters_schema={"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]})
    agent = await create_agent(client, tenant, action_ids=[action["id"]])
    llm.queue(Reply(tool_calls=[ToolCall("refund", '{"amount": 12,')]),
              Reply(tool_calls=[ToolCall("refund", '{"amount": "lots"}')]),
              Reply(text="I could not process the refund."))
    response = await chat(client, tenant, agent["id"], "Refund me")
    assert response.status_code == 200, response.text
    assert response.json()["actions_executed"] == []
    assert webhooks.calls == []
    errors = [json.loads(r["messages"][-1]["content"])["error"] for r in llm.requests[1:]]
    assert "not valid JSON" in errors[0] and "amount" in errors[1]


async def test_slow_model_is_504_and_the_message_stays_failed(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    runtime.settings.llm_timeout_seconds = 0.5
    agent = await create_agent(client, tenant)
    llm.queue(Reply(text="too late", delay_seconds=2))
    conversation = uuid.uuid4()
    response = await chat(client, tenant, agent["id"], "Hello?", conversation_id=conversation)
    assert response.status_code == 504, response.text
    [stored] = await _messages(runtime, conversation)
    assert stored.role == "customer" and stored.status == "failed" and stored.content == "Hello?"
    assert stored.error and stored.request_id in stored.error


async def test_unreachable_provider_is_503(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                                           llm: ScriptedLLM) -> None:
    runtime.settings.llm_api_base = refused_api_base()
    agent = await create_agent(client, tenant)
    response = await chat(client, tenant, agent["id"], "Anyone there?")
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]


async def test_offline_fallback_answers_from_faqs_when_the_provider_is_down(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    runtime.settings.llm_api_base = refused_api_base()
    agent = await create_agent(client, tenant, faqs=FAQS, settings={"offline_fallback": True})
    response = await chat(client, tenant, agent["id"], "what time are you open?")
    assert response.status_code == 200, response.text
    assert response.json()["model_used"] == "offline"
    assert response.json()["reply"] == FAQS[0]["answer"]


async def test_no_model_configured_uses_the_offline_responder(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant, faqs=FAQS, dialect={"name": "Arabic", "primary_language": "ar"})
    answered = await chat(client, tenant, agent["id"], "Do you deliver to other countries?")
    assert answered.status_code == 200, answered.text
    assert answered.json()["model_used"] == "offline" and answered.json()["reply"] == FAQS[1]["answer"]
    unknown = await chat(client, tenant, agent["id"], "Can I bring my pet giraffe to the office party?")
    assert unknown.json()["reply"].startswith("عذرًا")  # an honest "I don't know", in the agent's language
    assert unknown.json()["tokens"] == {"input": 0, "output": 0, "cost_usd": 0.0}


async def test_settings_prices_and_tier_models(client: httpx.AsyncClient, tenant: Tenant,
                                               llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={
        "pinned_tier": "complex", "tier_models": {"complex": "openai/big-local"},
        "model_prices": {"openai/big-local": {"input_per_million": 1.0, "output_per_million": 2.0}}})
    llm.queue(Reply(text="ok", prompt_tokens=1_000_000, completion_tokens=500_000))
    body = (await chat(client, tenant, agent["id"], "hi")).json()
    assert body["model_used"] == "openai/big-local" and body["tokens"]["cost_usd"] == 2.0
    assert llm.requests[-1]["model"] == "big-local"


async def test_a_stored_template_that_fails_is_a_configuration_error(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    # Saving refuses such a template; one already in the database (written before that check) still
    # answers 422, never a 500, and no model is called.
    agent = await create_agent(client, tenant)
    async with runtime.database.session() as session:
        await session.execute(update(Agent).where(Agent.id == uuid.UUID(agent["id"]))
                              .values(system_prompt="Hello {{ no_such_variable }}"))
    await runtime.config_cache.invalidate(tenant.company_id, uuid.UUID(agent["id"]))
    response = await chat(client, tenant, agent["id"], "hi")
    assert response.status_code == 422
    assert "no_such_variable" in response.text
    assert llm.requests == []


async def test_message_and_the_offered_variables_render(client: httpx.AsyncClient, tenant: Tenant,
                                                        llm: ScriptedLLM) -> None:
    prompt = ("Agent {{ agent_name }} of {{ company_name }} on {{ channel }}, {{ current_date }}.\n"
              "{% if customer.first_name %}Hi {{ customer.first_name }}.{% endif %}\n"
              "The customer wrote: {{ message }}")
    agent = await create_agent(client, tenant, system_prompt=prompt)
    patched = await client.patch(f"/v1/agents/{agent['id']}", json={"system_prompt": prompt + " ({{ message }})"},
                                 headers=tenant.headers)
    assert patched.status_code == 200, patched.text
    response = await chat(client, tenant, agent["id"], "Where is parcel 77?", channel="web")
    assert response.status_code == 200, response.text
    system = llm.requests[-1]["messages"][0]["content"]
    assert "The customer wrote: Where is parcel 77? (Where is parcel 77?)" in system
    assert f"Agent {agent['name']} of Company " in system and " on web, 20" in system


async def test_broken_templates_are_refused_on_save_with_their_line(client: httpx.AsyncClient,
                                                                    tenant: Tenant) -> None:
    agent = await create_agent(client, tenant, system_prompt="Fine: {{ agent_name }}")
    cases = [("Hi {{ name", 1, "syntax error"),
             ("Line one\nLine two {{ no_such_variable }}", 2, "unknown variable 'no_such_variable'"),
             ("ok\n{% for f in facts %}{{ f.fact }}{% endfor %}\n{{ agent_name | round }}", 3, "fails to render")]
    for source, line, reason in cases:
        for response in (
                await client.post("/v1/agents", json={"name": "x", "system_prompt": source}, headers=tenant.headers),
                await client.patch(f"/v1/agents/{agent['id']}", json={"system_prompt": source},
                                   headers=tenant.headers)):
            assert response.status_code == 422, (source, response.text)
            [error] = response.json()["detail"]
            assert error["loc"][-1] == "system_prompt"
            assert f"line {line}: {reason}" in error["msg"], error["msg"]
            assert "message, channel, metadata, customer" in error["msg"]  # the variables it may use
    stored = await client.get(f"/v1/agents/{agent['id']}", headers=tenant.headers)
    assert stored.json()["system_prompt"] == "Fine: {{ agent_name }}"  # nothing was stored
    listed = await client.get("/v1/agents", headers=tenant.headers)
    assert [a["id"] for a in listed.json()["items"]] == [agent["id"]]


async def test_errors_401_403_404_422(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                      runtime: Runtime) -> None:
    agent = await create_agent(client, tenant)
    assert (await client.post("/v1/chat", json={})).status_code == 401
    no_chat = await make_key(runtime, tenant.company_id, ["agents"])
    body = {"company_id": str(tenant.company_id), "agent_id": agent["id"], "conversation_id": str(uuid.uuid4()),
            "customer_id": "c1", "message": "hi"}
    assert (await client.post("/v1/chat", json=body, headers={"Authorization": f"Bearer {no_chat}"})
            ).status_code == 403
    # Another company's agent, or our key naming another company: unknown.
    theirs = await create_agent(client, other_tenant)
    assert (await chat(client, tenant, theirs["id"], "hi")).status_code == 404
    assert (await client.post("/v1/chat", json={**body, "company_id": str(other_tenant.company_id)},
                              headers=tenant.headers)).status_code == 404
    # Conversation ids are per company: one another company uses is simply a new conversation here.
    their_conversation = uuid.uuid4()
    assert (await chat(client, other_tenant, theirs["id"], "hi", conversation_id=their_conversation)
            ).status_code == 200
    assert (await chat(client, tenant, agent["id"], "hi", conversation_id=their_conversation)).status_code == 200
    for bad, field in [({"message": ""}, "message"), ({"message": "x" * 16_001}, "message"),
                       ({"channel": "fax"}, "channel"), ({"metadata": {str(i): i for i in range(21)}}, "metadata"),
                       ({"conversation_id": "nope"}, "conversation_id")]:
        response = await client.post("/v1/chat", json={**body, **bad}, headers=tenant.headers)
        assert response.status_code == 422 and field in response.text, (bad, response.text)


async def test_a_conversation_stays_with_its_customer(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    assert (await chat(client, tenant, agent["id"], "hi", conversation_id=conversation,
                       customer_id="alice")).status_code == 200
    response = await chat(client, tenant, agent["id"], "hi", conversation_id=conversation, customer_id="bob")
    assert response.status_code == 422 and "conversation_id" in response.text


async def test_after_reply_actions_run_in_the_background_and_join_the_record(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    action = await create_action(
        client, tenant, name="crm_log", webhook_url=webhooks.base_url + "/log", run_after_reply=True,
        parameters_schema={"type": "object", "properties": {"customer_id": {"type": "string"},
                                                             "reply": {"type": "string"}}})
    agent = await create_agent(client, tenant, action_ids=[action["id"]])
    conversation = uuid.uuid4()
    response = await chat(client, tenant, agent["id"], "Log me", conversation_id=conversation)
    assert response.status_code == 200
    assert "tools" not in llm.requests[-1]  # an after-reply action is not offered to the model
    await run_jobs(runtime)
    assert webhooks.calls[-1].json() == {"customer_id": "customer-1", "reply": "echo: Log me"}
    stored = await _messages(runtime, conversation)
    assert stored[-1].actions_executed == ["crm_log"] and stored[-1].tool_calls[0]["after_reply"] is True


async def test_config_comes_from_the_cache_after_the_first_load_and_notes_are_kept(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"knowledge_top_k": 0})
    conversation = uuid.uuid4()
    for text in ("first", "second"):
        assert (await chat(client, tenant, agent["id"], text, conversation_id=conversation)).status_code == 200
    replies = [m for m in await _messages(runtime, conversation) if m.role == "assistant"]
    assert [m.config_cache_hit for m in replies] == [False, True]
    # A service that chose not to run says why, on the stored reply.
    assert [m.metadata_["notes"]["knowledge"] for m in replies] == ["disabled for this agent (knowledge_top_k 0)"] * 2


class _BrokenKnowledge:
    available = True

    async def retrieve(self, **kwargs: object) -> list[object]:
        raise RuntimeError("index corrupted: secret internals")


async def test_pipeline_error_is_500_with_request_id_and_no_trace(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    saved = runtime.components.get("knowledge")
    runtime.components["knowledge"] = _BrokenKnowledge()
    # Like a real server: the error handler's response reaches the client instead of the exception.
    transport = httpx.ASGITransport(app=create_app(runtime=runtime), raise_app_exceptions=False)
    try:
        conversation = uuid.uuid4()
        async with httpx.AsyncClient(transport=transport, base_url="http://cortex.test") as server:
            response = await chat(server, tenant, agent["id"], "hello", conversation_id=conversation)
    finally:
        if saved is None:
            runtime.components.pop("knowledge")
        else:
            runtime.components["knowledge"] = saved
    assert response.status_code == 500
    body = response.json()
    assert body["request_id"] and "secret internals" not in response.text and "Traceback" not in response.text
    [stored] = await _messages(runtime, conversation)
    assert stored.status == "failed" and body["request_id"] in (stored.error or "")

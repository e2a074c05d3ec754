"""`POST /v1/chat` with `"stream": true`, read by httpx-sse from a real Cortex server on loopback."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import select

from cortex.db.models import Message
from cortex.kit.runtime import Runtime
from tests.live_cortex import LiveCortex
from tests.observability.test_metrics import scrape, value
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall, refused_api_base
from tests.support import Tenant, create_action, create_agent
from tests.webhook_target import WebhookTarget

# The cache is off for the agent below, so 05 does not run.
STEPS = ["config_load", "memory_recall", "context_engine", "token_optimizer", "model_router", "agent_compiler"]


def _body(tenant: Tenant, agent_id: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"company_id": str(tenant.company_id), "agent_id": agent_id,
            "conversation_id": str(extra.pop("conversation_id", uuid.uuid4())), "customer_id": "customer-1",
            "message": message, "stream": True, **extra}


async def _events(live: LiveCortex, tenant: Tenant, body: dict[str, Any],
                  headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    async with httpx.AsyncClient(base_url=live.base_url, headers={**tenant.headers, **(headers or {})},
                                 timeout=30) as http, aconnect_sse(http, "POST", "/v1/chat", json=body) as source:
        events = [(event.id, json.loads(event.data)) async for event in source.aiter_sse()]
        return source.response, events


async def _stored(runtime: Runtime, conversation_id: str) -> list[Message]:
    async with runtime.database.session() as session:
        rows = await session.scalars(select(Message).where(Message.conversation_id == uuid.UUID(conversation_id))
                                     .order_by(Message.created_at))
        return list(rows)


async def test_steps_then_deltas_then_done_which_is_the_plain_body(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"cache": {"enabled": False}})
    live_llm.queue(Reply(text="We open at nine every weekday.", prompt_tokens=90, completion_tokens=6))
    body = _body(tenant, agent["id"], "When do you open?")
    response, events = await _events(live, tenant, body, {"Idempotency-Key": "stream-" + uuid.uuid4().hex})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no" and response.headers["x-request-id"]
    names = [data["event"] for _, data in events]
    assert [data["name"] for _, data in events if data["event"] == "step"] == STEPS
    first_delta = names.index("delta")
    assert all(name == "step" for name in names[:first_delta]) and names[-1] == "done"
    assert [int(ident) for ident, _ in events] == list(range(1, len(events) + 1))
    text = "".join(data["text"] for _, data in events if data["event"] == "delta")
    assert text == "We open at nine every weekday." and names.count("delta") == 6
    done = events[-1][1]
    assert done["reply"] == text and done["tokens"] == {"input": 90, "output": 6, "cost_usd": 0.0}
    # The same request without streaming, under the same key: the stored turn, exactly the done body.
    async with httpx.AsyncClient(base_url=live.base_url, headers=tenant.headers, timeout=30) as http:
        plain = await http.post("/v1/chat", json={**body, "stream": False},
                                headers={"Idempotency-Key": response.request.headers["idempotency-key"]})
    assert plain.status_code == 200, plain.text
    assert {k: v for k, v in done.items() if k not in ("event", "message_id")} == plain.json()
    stored = await _stored(runtime, body["conversation_id"])
    assert [(m.role, m.status) for m in stored] == [("customer", "ok"), ("assistant", "ok")]
    reply = stored[1]
    assert str(reply.id) == done["message_id"] and reply.content == text
    assert reply.tokens_input == 90 and reply.step_timings["agent_compiler"] == done["step_timings"]["agent_compiler"]


async def test_a_tool_round_is_told_and_the_final_text_streams(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    action = await create_action(client, tenant, name="order_status", webhook_url=webhooks.base_url + "/orders")
    agent = await create_agent(client, tenant, action_ids=[action["id"]])
    live_llm.queue(Reply(tool_calls=[ToolCall("order_status", "{}")]), Reply(text="It ships today."))
    _, events = await _events(live, tenant, _body(tenant, agent["id"], "Where is my order?"))
    names = [data["event"] for _, data in events]
    [tool] = [data for _, data in events if data["event"] == "tool"]
    assert tool["name"] == "order_status" and tool["status"] == 200 and tool["ms"] > 0
    assert names.index("tool") < names.index("delta") and names[-1] == "done"
    assert events[-1][1]["actions_executed"] == ["order_status"] and len(webhooks.calls) == 1
    assert live_llm.requests[0]["stream"] is True and live_llm.requests[0]["tools"]


async def test_errors_before_the_first_byte_are_plain_json_with_their_status(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        unknown = await http.post("/v1/chat", json=_body(tenant, str(uuid.uuid4()), "Hi"), headers=tenant.headers)
        assert unknown.status_code == 404 and unknown.json() == {"detail": "agent not found"}
        no_key = await http.post("/v1/chat", json=_body(tenant, agent["id"], "Hi"))
        assert no_key.status_code == 401
        live_llm.script = lambda body: Reply(status=503)
        down = await http.post("/v1/chat", json=_body(tenant, agent["id"], "Hi"), headers=tenant.headers)
    assert down.status_code == 503 and down.headers["content-type"] == "application/json"
    assert down.json()["request_id"] == down.headers["x-request-id"]
    settings = live.runtime.settings
    live_llm.script = lambda body: Reply(text="too late", delay_seconds=1.0)
    settings.llm_timeout_seconds = 0.3
    try:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
            slow = await http.post("/v1/chat", json=_body(tenant, agent["id"], "Hi"), headers=tenant.headers)
            invalid = await http.post("/v1/chat", json={**_body(tenant, agent["id"], "Hi"), "message": ""},
                                      headers=tenant.headers)
    finally:
        settings.llm_timeout_seconds = 5.0
    assert slow.status_code == 504 and slow.json()["request_id"]
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "message"]


async def test_a_provider_failing_mid_reply_ends_the_stream_with_an_error_event(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"offline_fallback": True})
    live_llm.queue(Reply(text="one two three four five", fail_after_tokens=2))
    body = _body(tenant, agent["id"], "Tell me")
    response, events = await _events(live, tenant, body)
    assert response.status_code == 200
    assert [data["event"] for _, data in events] [-3:] == ["delta", "delta", "error"]
    error = events[-1][1]
    assert error["status"] == 503 and error["code"] == "service_unavailable"
    assert error["request_id"] == response.headers["x-request-id"] and error["message"]
    assert len(live_llm.requests) == 1  # neither retried nor answered offline after text went out
    stored = await _stored(runtime, body["conversation_id"])
    assert [(m.role, m.status) for m in stored] == [("customer", "failed")]


async def test_a_client_that_hangs_up_after_the_first_delta_still_gets_its_turn_stored(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, live: LiveCortex, live_llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    after = await create_action(client, tenant, name="crm_log", webhook_url=webhooks.base_url + "/log",
                                run_after_reply=True)
    agent = await create_agent(client, tenant, action_ids=[after["id"]])
    words = " ".join(f"word{i}" for i in range(20))
    live_llm.queue(Reply(text=words, token_delay_seconds=0.05))
    body = _body(tenant, agent["id"], "Tell me a long story")
    async with httpx.AsyncClient(base_url=live.base_url, headers=tenant.headers, timeout=30) as http, \
            aconnect_sse(http, "POST", "/v1/chat", json=body) as source:
        async for event in source.aiter_sse():
            if json.loads(event.data)["event"] == "delta":
                break  # hang up mid-reply
    deadline = time.monotonic() + 10
    stored: list[Message] = []
    while time.monotonic() < deadline:
        stored = await _stored(runtime, body["conversation_id"])
        if len(stored) == 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.to_thread(live.settle)  # the reply's post-action job, as the server's worker would run it
    stored = await _stored(runtime, body["conversation_id"])
    assert [(m.role, m.status) for m in stored] == [("customer", "ok"), ("assistant", "ok")]
    assert stored[1].content == words
    assert [call["name"] for call in stored[1].tool_calls] == ["crm_log"]  # post actions ran
    assert webhooks.calls and webhooks.calls[0].json()["reply"] == words


async def test_heartbeats_are_comment_lines_while_the_turn_is_quiet(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    live_llm.script = lambda body: Reply(text="finally here", delay_seconds=0.8)
    settings = live.runtime.settings
    saved = settings.stream_heartbeat_seconds
    settings.stream_heartbeat_seconds = 0.1
    try:
        async with httpx.AsyncClient(base_url=live.base_url, headers=tenant.headers, timeout=30) as http, \
                http.stream("POST", "/v1/chat", json=_body(tenant, agent["id"], "Slow one")) as response:
            lines = [line async for line in response.aiter_lines()]
    finally:
        settings.stream_heartbeat_seconds = saved
    assert response.status_code == 200
    assert lines.count(": ping") >= 1, lines
    data = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]
    assert all("event" in item for item in data) and data[-1]["event"] == "done"


async def test_a_cache_hit_streams_one_delta_then_done(
        client: httpx.AsyncClient, tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    live_llm.queue(Reply(text="Parcels arrive within three days."))
    _, first = await _events(live, tenant, _body(tenant, agent["id"], "How long does delivery take?"))
    assert first[-1][1]["cached"] is False
    live.settle()
    calls = len(live_llm.requests)
    _, events = await _events(live, tenant, {**_body(tenant, agent["id"], "how long does delivery take"),
                                             "customer_id": "customer-2"})
    names = [data["event"] for _, data in events]
    assert names.count("delta") == 1 and names[-2:] == ["delta", "done"]
    assert events[-2][1]["text"] == "Parcels arrive within three days." and events[-1][1]["cached"] is True
    assert len(live_llm.requests) == calls


async def test_an_offline_answer_streams_once_and_the_metrics_match_a_plain_turn(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, settings={"offline_fallback": True, "cache": {"enabled": False}},
                               faqs=[{"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."}])
    runtime.settings.llm_api_base = refused_api_base()
    before = await scrape(client, tenant.headers)
    async with aconnect_sse(client, "POST", "/v1/chat", json=_body(tenant, agent["id"], "Do you ship abroad?"),
                            headers=tenant.headers) as source:
        events = [json.loads(event.data) async for event in source.aiter_sse()]
    plain = await client.post("/v1/chat", json={**_body(tenant, agent["id"], "Do you ship abroad?"),
                                                "stream": False}, headers=tenant.headers)
    after = await scrape(client, tenant.headers)
    names = [data["event"] for data in events]
    assert names.count("delta") == 1 and names[-2:] == ["delta", "done"]
    assert events[-1]["model_used"] == "offline" == plain.json()["model_used"]
    assert events[-2]["text"] == events[-1]["reply"] == plain.json()["reply"]
    # The streamed and the plain turn count alike: two chats, each with its failed model calls.
    chats = value(after, "cortex_chat_requests_total", agent_id=agent["id"], outcome="ok") - value(
        before, "cortex_chat_requests_total", agent_id=agent["id"], outcome="ok")
    assert chats == 2
    failed_calls = value(after, "cortex_llm_calls_total", outcome="unreachable") - value(
        before, "cortex_llm_calls_total", outcome="unreachable")
    assert failed_calls == 2 * (runtime.settings.llm_max_retries + 1)

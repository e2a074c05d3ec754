"""OpenTelemetry: one span per request, per pipeline service, per model call and per tool call."""

from __future__ import annotations

import uuid

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cortex.kit.runtime import Runtime
from cortex.observability.telemetry import Telemetry
from cortex.settings import Settings
from tests.conftest import SCRIPTED_MODEL
from tests.observability.scenario import CACHED_QUESTION, semantic_cache
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall
from tests.support import Tenant, chat, create_action, create_agent
from tests.webhook_target import WebhookTarget


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_tool_chat_leaves_one_trace_of_nested_spans(client: httpx.AsyncClient, tenant: Tenant,
                                                            runtime: Runtime, llm: ScriptedLLM,
                                                            webhooks: WebhookTarget) -> None:
    action = await create_action(client, tenant, name="lookup", webhook_url=webhooks.base_url + "/x",
                                 parameters_schema={"type": "object", "properties": {"q": {"type": "string"}}})
    agent = await create_agent(client, tenant, action_ids=[action["id"]])
    llm.queue(Reply(tool_calls=[ToolCall("lookup", '{"q": "a"}')], prompt_tokens=50, completion_tokens=5),
              Reply(text="Found it.", prompt_tokens=70, completion_tokens=7))
    exporter = InMemorySpanExporter()
    runtime.telemetry.export_spans(exporter)
    try:
        response = await client.post(
            "/v1/chat", headers={**tenant.headers, "X-Request-ID": "trace-me-1"},
            json={"company_id": str(tenant.company_id), "agent_id": agent["id"],
                  "conversation_id": str(uuid.uuid4()), "customer_id": "customer-1", "message": "look it up"})
    finally:
        runtime.telemetry.shutdown()
    assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    [request] = _by_name(spans, "POST /v1/chat")
    assert request.kind == trace.SpanKind.SERVER and request.attributes is not None
    assert request.attributes["http.route"] == "/v1/chat" and request.attributes["http.response.status_code"] == 200
    assert request.attributes["cortex.request_id"] == "trace-me-1"
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}

    [pipeline] = _by_name(spans, "chat.pipeline")
    assert pipeline.parent is not None and pipeline.parent.span_id == request.context.span_id
    attributes = dict(pipeline.attributes or {})
    assert attributes["cortex.agent_id"] == agent["id"] and attributes["cortex.model"] == SCRIPTED_MODEL
    assert attributes["cortex.cached"] is False and attributes["cortex.tier"]
    assert attributes["cortex.tokens_input"] == 120 and attributes["cortex.tokens_output"] == 12
    # context_engine has no knowledge component in this runtime: it returns before it runs.
    for step in ("config_load", "memory_recall", "token_optimizer", "model_router",
                 "agent_compiler", "tool_execution"):
        [span] = _by_name(spans, f"pipeline.{step}")
        assert span.attributes is not None and span.attributes["cortex.agent_id"] == agent["id"], step
    [compiler] = _by_name(spans, "pipeline.agent_compiler")
    calls = _by_name(spans, "llm.call")
    assert len(calls) == 2 and all(c.parent is not None and c.parent.span_id == compiler.context.span_id
                                   for c in calls)
    assert [dict(c.attributes or {})["cortex.tokens_input"] for c in calls] == [50, 70]
    assert all(dict(c.attributes or {})["cortex.model"] == SCRIPTED_MODEL for c in calls)
    [tool] = _by_name(spans, "tool.call")
    [execution] = _by_name(spans, "pipeline.tool_execution")
    assert tool.parent is not None and tool.parent.span_id == execution.context.span_id
    assert dict(tool.attributes or {})["cortex.action"] == "lookup"
    assert dict(tool.attributes or {})["cortex.outcome"] == "ok"
    # No message text or customer id in any attribute.
    assert not any("look it up" in str(v) or "customer-1" in str(v)
                   for s in spans for v in dict(s.attributes or {}).values())


async def test_a_cache_hit_is_marked_cached_and_skips_the_model(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    exporter = InMemorySpanExporter()
    runtime.telemetry.export_spans(exporter)
    try:
        with semantic_cache(runtime):
            assert (await chat(client, tenant, agent["id"], CACHED_QUESTION)).json()["cached"] is True
    finally:
        runtime.telemetry.shutdown()
    spans = exporter.get_finished_spans()
    [pipeline] = _by_name(spans, "chat.pipeline")
    assert dict(pipeline.attributes or {})["cortex.cached"] is True
    assert _by_name(spans, "pipeline.cache_check") and not _by_name(spans, "llm.call")


async def test_tracing_is_off_without_an_exporter(client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert isinstance(runtime.telemetry.tracer, trace.NoOpTracer)
    assert isinstance(Telemetry.from_settings(Settings()).tracer, trace.NoOpTracer)


def test_otlp_export_when_the_endpoint_is_set(webhooks: WebhookTarget) -> None:
    """A loopback HTTP server stands in for the collector: spans arrive as OTLP/HTTP protobuf."""
    telemetry = Telemetry.from_settings(Settings(otel_exporter_otlp_endpoint=webhooks.base_url))
    with telemetry.tracer.start_as_current_span("probe"):
        pass
    telemetry.shutdown()  # flushes the batch
    [call] = webhooks.calls
    assert call.method == "POST" and call.path == "/v1/traces"
    assert call.headers["content-type"] == "application/x-protobuf" and b"probe" in call.body

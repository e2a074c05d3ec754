"""The LLM gateway against the scripted OpenAI-compatible server, through real LiteLLM calls."""

from __future__ import annotations

import pytest

from cortex.agents.schemas import ModelPrice
from cortex.kit.errors import GatewayTimeout, ServiceUnavailable
from cortex.kit.runtime import Runtime
from cortex.llm.gateway import DEFAULT_CONTEXT_WINDOW, context_window, count_tokens, price_of
from tests.conftest import SCRIPTED_MODEL
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall, refused_api_base

USER = [{"role": "user", "content": "Where is my parcel?"}]


async def test_text_reply_with_usage_and_settings_price(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(text="On its way.", prompt_tokens=1000, completion_tokens=500))
    prices = {SCRIPTED_MODEL: ModelPrice(input_per_million=2.0, output_per_million=10.0)}
    result = await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER, prices=prices, temperature=0.1)
    assert result.text == "On its way."
    assert (result.tokens_input, result.tokens_output) == (1000, 500)
    assert result.cost_usd == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)
    assert llm.requests[-1]["messages"] == USER
    assert llm.requests[-1]["temperature"] == 0.1


async def test_unknown_model_costs_zero_and_gets_default_window(runtime: Runtime, llm: ScriptedLLM) -> None:
    result = await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)
    assert result.cost_usd == 0.0
    assert context_window(SCRIPTED_MODEL) == DEFAULT_CONTEXT_WINDOW
    assert context_window(SCRIPTED_MODEL, 32_000) == 32_000
    assert context_window("gpt-4o-mini") >= 100_000
    assert price_of("gpt-4o-mini", {}, 1_000_000, 0) > 0


async def test_tool_calls_come_back_raw(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(tool_calls=[ToolCall("lookup_order", '{"order_id": "ORD-1"}')]))
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
    result = await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER, tools=tools)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("lookup_order", '{"order_id": "ORD-1"}')]
    assert result.message["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert llm.requests[-1]["tools"][0]["function"]["name"] == "lookup_order"


async def test_slow_model_is_504(runtime: Runtime, llm: ScriptedLLM) -> None:
    runtime.settings.llm_timeout_seconds = 0.5
    llm.queue(Reply(text="late", delay_seconds=2))
    with pytest.raises(GatewayTimeout):
        await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)


async def test_refused_connection_is_503(runtime: Runtime, llm: ScriptedLLM) -> None:
    runtime.settings.llm_api_base = refused_api_base()
    with pytest.raises(ServiceUnavailable):
        await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)


async def test_transient_5xx_is_retried(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(status=503), Reply(text="second try"))
    result = await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER)
    assert result.text == "second try"
    assert len(llm.requests) == 2


async def test_fallback_model_after_failures(runtime: Runtime, llm: ScriptedLLM) -> None:
    runtime.settings.llm_max_retries = 0
    try:
        llm.queue(Reply(status=502), Reply(text="from fallback"))
        result = await runtime.llm.complete(models=[SCRIPTED_MODEL, "openai/fallback-model"], messages=USER)
    finally:
        runtime.settings.llm_max_retries = 1
    assert result.text == "from fallback" and result.model == "openai/fallback-model"
    assert [r["model"] for r in llm.requests] == ["scripted-model", "fallback-model"]


async def test_complete_json_parses_or_returns_none(runtime: Runtime, llm: ScriptedLLM) -> None:
    schema = {"type": "object", "properties": {"facts": {"type": "array"}}, "required": ["facts"]}
    llm.queue(Reply(text='```json\n{"facts": []}\n```'), Reply(text="not json"))
    parsed, _ = await runtime.llm.complete_json(models=[SCRIPTED_MODEL], messages=USER, schema=schema)
    assert parsed == {"facts": []}
    assert llm.requests[-1]["response_format"]["type"] == "json_schema"
    parsed, _ = await runtime.llm.complete_json(models=[SCRIPTED_MODEL], messages=USER, schema=schema)
    assert parsed is None


def test_token_counting_is_offline_and_monotonic() -> None:
    short = count_tokens(SCRIPTED_MODEL, text="hello")
    long = count_tokens(SCRIPTED_MODEL, text="hello " * 100)
    assert 0 < short < long
    assert count_tokens("gpt-4o-mini", messages=USER) > 0
